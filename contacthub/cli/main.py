"""The `contacthub` command: one entry point, one sub-command group per feature."""

from __future__ import annotations

import typer

from contacthub.cli import server
from contacthub.cli.activity_types import activity_type_app
from contacthub.cli.bounces import bounces_app
from contacthub.cli.channels import apikey_app, channel_app
from contacthub.cli.consents import consent_app
from contacthub.cli.contacts import contact_app
from contacthub.cli.cors import cors_app
from contacthub.cli.demo import demo
from contacthub.cli.email import issue_app, newsletter_app, subscriber_app
from contacthub.cli.engagement import issue_engagement
from contacthub.cli.groups import group_app
from contacthub.cli.output import Commands
from contacthub.cli.retention import retention_app
from contacthub.cli.suppressions import suppression_app
from contacthub.cli.users import token_app, user_app
from contacthub.cli.webhooks import webhooks_app

app = typer.Typer(
    help="contacthub: the central hub for contacts, consents, activities and emails.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Commands,
)
app.command()(server.serve)
app.command()(server.migrate)
app.command()(server.proxy)
app.command()(server.facade)
app.command()(demo)
app.add_typer(channel_app, name="channel")
app.add_typer(apikey_app, name="apikey")
app.add_typer(cors_app, name="cors")
app.add_typer(consent_app, name="consent")
app.add_typer(activity_type_app, name="activity-type")
app.add_typer(contact_app, name="contact")
app.add_typer(group_app, name="group")
app.add_typer(newsletter_app, name="newsletter")
app.add_typer(subscriber_app, name="subscriber")
app.add_typer(issue_app, name="issue")
issue_app.command("engagement")(issue_engagement)
app.add_typer(suppression_app, name="suppression")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(bounces_app, name="bounces")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(retention_app, name="retention")
