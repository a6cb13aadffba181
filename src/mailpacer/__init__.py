"""mailpacer: deliver large batches of personalized email through your own SMTP server, as fast
as that server allows, without tripping its limits and without losing a message."""

__version__ = "0.1.0"
