"""``python -m ringscope.api ...``: the API's commands without the main ``ringscope`` CLI."""

from ringscope.api.cli import api_cli

api_cli(prog_name="ringscope-api")
