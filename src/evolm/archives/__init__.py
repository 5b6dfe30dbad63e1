"""Archives: MAP-Elites grid, CVT, deep grid, GA population, best-of-N."""
