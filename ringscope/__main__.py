from ringscope.cli import app

app()
