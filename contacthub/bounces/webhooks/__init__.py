"""Provider webhooks: Amazon SES (through SNS), SendGrid, Postmark and Mailgun.

One module per provider verifies its calls by the provider's documented scheme and reads its
events; `endpoints` serves them and hands the events to the feedback processor
(`contacthub.bounces.processor`), which ties each to its delivery.
"""
