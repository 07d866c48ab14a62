"""Feedback about sent email: bounces (DSNs by IMAP or SMTP), provider webhooks, complaints."""
