"""The paper's tables and figures from the tidy "cells" table."""
