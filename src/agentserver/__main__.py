from agentserver.cli import app

app(prog_name="agentserver")
