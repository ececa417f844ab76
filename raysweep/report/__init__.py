"""Report stage: results tables, best configuration and plots of a sweep."""
