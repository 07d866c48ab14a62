"""Email marketing: newsletters, subscribers, issues, sending and tracking."""
