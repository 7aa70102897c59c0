"""The paper's tables and figures: plans, the builder of the tidy cells, statistics, rendering."""
