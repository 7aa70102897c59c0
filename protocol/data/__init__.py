"""Data sets: raw sources, recipes, the dataset directory (DESIGN contract 1) and exports."""
