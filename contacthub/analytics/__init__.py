"""Analytics: the dashboard's counts, kept in rollup tables beside the activity log."""
