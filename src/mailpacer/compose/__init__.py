"""Composing personalized messages: templates with languages, inline QR codes, attachments, MIME,
and validation of a whole campaign before anything is sent."""

from mailpacer.compose.composer import Composer
from mailpacer.compose.recipients import Recipient, iter_recipients
from mailpacer.compose.template import Template, load_template
from mailpacer.compose.validate import CampaignCheck, validate_campaign

__all__ = [
    "CampaignCheck",
    "Composer",
    "Recipient",
    "Template",
    "iter_recipients",
    "load_template",
    "validate_campaign",
]
