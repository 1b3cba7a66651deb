"""agent.py's command line: the framework's commands and ours in one ``--help``.

livekit-agents 1.8 runs ``agent.py console|dev|start|connect`` through its built-in
command line, which it marks deprecated in favour of the LiveKit CLI (``lk agent dev``,
``lk agent console``). Those import agent.py as a module (``python -m livekit.agents``)
and never run its main(), which checks the configuration and registers the call handler
under our agent name; so this project keeps the built-in commands and says so here:

* ``check`` (preflight.py) and ``download-files`` are listed with the others, and each
  command's ``--help`` works before any configuration or secret exists;
* ``download-files`` runs the framework's current form of it (``python -m livekit.agents
  download-files``), which prints no deprecation notice;
* ``dev`` says once what it does and does not do (no reload: the framework removed it),
  instead of the framework's two warnings, which point to ``lk agent dev``;
* logs are at INFO by default (the framework's console and dev default to DEBUG, which
  buries the conversation); ``--log-level debug`` brings the rest back.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import typer
from livekit.agents import AgentServer

import records_cli
from config import Settings
from config_placeholders import example_values
from console_text import TEXT_MODE, portaudio_problem

HELP = (
    "The phone assistant: takes calls from your LiveKit server and talks with the callers.\n\n"
    "First steps: [bold]console --text[/bold] (type to the agent; needs only OPENAI_API_KEY),"
    " [bold]check[/bold] (would a call reach this agent?), then [bold]dev[/bold] (take calls)."
    " Logs are at INFO; add --log-level debug for more."
)

# Our words for the framework's commands, which otherwise say "deprecated" and point to
# `lk agent ...`, which does not run this project (see the module docstring).
COMMAND_HELP = {
    "console": (
        "Talk to the agent in this terminal: your microphone and speakers, or typing with "
        "--text. No LiveKit server and no phone line: transfers are shown, not sent."
    ),
    "dev": (
        "Take calls from your LiveKit server in development mode (no load limit). It does not "
        "reload on code changes: stop it (Ctrl+C) and start it again."
    ),
    "start": (
        "Take calls in production mode: load limit 0.7, drains running calls on SIGTERM, "
        "health check on port 8081."
    ),
    "connect": "Join one existing room of your LiveKit server as the agent (debugging).",
}
CHECK_HELP = (
    "Preflight: would a call reach this agent? Checks the configuration (example values "
    "included), the credentials, the inbound trunks, the dispatch rule and the outbound "
    "trunk. Takes no calls; exit status 0 when every check passes."
)
DOWNLOAD_HELP = (
    "Fetch the plugins' model files ahead of time (the Docker image does it at build time)."
)

# What the framework's `dev` logs at start; replaced by one line of ours (dev_notice).
_DEV_WARNINGS = ("dev mode is deprecated", "in-process auto-reload has been removed")


def command_of(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word that is not an option)."""
    return next((arg for arg in argv[1:] if not arg.startswith("-")), None)


def wants_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for help rather than for the command to run."""
    return "--help" in argv[1:] or len(argv) < 2


def app_for(server: AgentServer) -> typer.Typer:
    """The framework's command line with our help, ``check`` and ``download-files``."""
    from livekit.agents.cli import _legacy  # the built-in CLI cli.run_app runs

    app = _legacy._build_cli(server)
    app.info.help = HELP
    app.registered_commands = [
        info for info in app.registered_commands if _name(info) != "download-files"
    ]
    for info in app.registered_commands:
        info.help = COMMAND_HELP.get(_name(info), info.help)
    app.command("check", help=CHECK_HELP)(_check)
    app.command("calls", help=records_cli.CALLS_HELP)(_calls)
    app.command("messages", help=records_cli.MESSAGES_HELP)(_messages)
    app.command("download-files", help=DOWNLOAD_HELP)(_download_files)
    order = ["console", "check", "dev", "start", "calls", "messages", "connect", "download-files"]
    app.registered_commands.sort(
        key=lambda info: order.index(_name(info)) if _name(info) in order else len(order)
    )
    return app


def run(server: AgentServer, argv: Sequence[str]) -> None:
    """Run the command ``argv`` names (``argv[0]`` is the program)."""
    if command_of(argv) == "dev" and not wants_help(argv):
        _quiet_dev_warnings()
        print(
            "agent.py dev: no reload on code changes; after editing, stop it (Ctrl+C) and "
            "start it again.",
            file=sys.stderr,
        )
    command = typer.main.get_command(app_for(server))
    dev = getattr(command, "commands", {}).get("dev")
    for param in dev.params if dev is not None else []:
        if param.name == "reload":  # it only warns that reloading is gone: not offered
            param.hidden = True  # type: ignore[attr-defined]
    command(args=list(argv[1:]), prog_name="agent.py")


def refuse_examples(settings: Settings, command: str) -> None:
    """Example values left in the configuration (config_placeholders.py): a worker
    taking calls stops on them, listing each; the console, which dials nobody, runs with
    them and says so."""
    examples = example_values(settings)
    if not examples:
        return
    if command == "console":
        print(
            f"\nNote: {settings.source} still holds {len(examples)} example values (its "
            "business name, numbers, trunk). Fine for the console, which dials nobody; "
            "`agent.py check` lists what to put there before `dev` or `start`.\n",
            file=sys.stderr,
        )
        return
    print(
        f"\nExample values left in {settings.source} (replace each before taking calls; "
        "`agent.py console` runs with them):\n" + "\n".join(f"  - {e}" for e in examples) + "\n",
        file=sys.stderr,
    )
    sys.exit(2)


def prepare_console(typing: bool) -> None:
    """Before the framework's console starts: the sound library it opens even to type,
    and text mode marked for the job (console_text.py)."""
    if (problem := portaudio_problem()) is not None:
        print(f"\n{problem}\n", file=sys.stderr)
        sys.exit(2)
    if typing:
        os.environ[TEXT_MODE] = "1"


def _name(info: typer.models.CommandInfo) -> str:
    name = info.name or (info.callback.__name__ if info.callback else "")
    return name.strip("_").replace("_", "-")


def _check() -> None:
    import preflight

    raise typer.Exit(preflight.run(os.environ))


_SINCE = typer.Option(None, "--since", help="How far back: 90m, 24h, 7d, 2w or a date.")
_LIMIT = typer.Option(50, "--limit", help="At most this many.")
_JSON = typer.Option(False, "--json", help="JSON, for scripts.")
_NUMBERS = typer.Option(False, "--show-numbers", help="Phone numbers in full (masked otherwise).")


def _calls(
    since: str | None = _SINCE, limit: int = _LIMIT, json: bool = _JSON, numbers: bool = _NUMBERS
) -> None:
    raise typer.Exit(
        records_cli.run(
            "calls", os.environ, since=since, limit=limit, as_json=json, show_numbers=numbers
        )
    )


def _messages(
    since: str | None = _SINCE, limit: int = _LIMIT, json: bool = _JSON, numbers: bool = _NUMBERS
) -> None:
    raise typer.Exit(
        records_cli.run(
            "messages", os.environ, since=since, limit=limit, as_json=json, show_numbers=numbers
        )
    )


def _download_files() -> None:
    from livekit.agents.__main__ import main as framework

    raise typer.Exit(framework(["download-files"]))


class _DropDevWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_DEV_WARNINGS)


def _quiet_dev_warnings() -> None:
    logging.getLogger("livekit.agents").addFilter(_DropDevWarnings())
