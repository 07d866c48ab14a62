"""contacthub: the central hub for an organisation's contacts, consents, activities and emails."""

__version__ = "0.1.0"
