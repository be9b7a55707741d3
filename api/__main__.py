"""``python -m api ...``: the API's commands without the main ``ringscope`` CLI."""

from api.cli import api_cli

api_cli(prog_name="ringscope-api")
