"""Every command offers the options it offered before the structure work: names, types, choices, defaults.

The snapshot (help_offer.json) was taken before options moved into commands/common.py; refactors may
change wording, never what a user can type. Regenerate it only for a deliberate interface change:
`python tests/commands/test_help_stable.py > tests/commands/help_offer.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from svge_cli.cli import cli

SNAPSHOT = Path(__file__).with_name("help_offer.json")


def _param_offer(p: click.Parameter) -> dict[str, Any]:
    kind = p.type
    offer: dict[str, Any] = {
        "opts": sorted(p.opts + p.secondary_opts),
        "kind": "argument" if isinstance(p, click.Argument) else "option",
        "type": kind.name,
        "required": p.required,
        "multiple": p.multiple,
        "nargs": p.nargs,
    }
    if isinstance(kind, click.Choice):
        offer["choices"] = sorted(map(str, kind.choices))
    if isinstance(p, click.Option):
        offer["flag"] = p.is_flag
        if not callable(p.default):
            unset = p.default is None or type(p.default).__name__ == "Sentinel"  # click >= 8.2 marks "no default"
            offer["default"] = None if unset else str(p.default)
    return offer


def command_offers() -> dict[str, list[dict[str, Any]]]:
    """What each command (and the group itself) accepts, keyed by its command path."""
    ctx = click.Context(cli)
    offers = {"svge": [_param_offer(p) for p in cli.params]}
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        offers[f"svge {name}"] = sorted((_param_offer(p) for p in cmd.params), key=lambda o: o["opts"])
    return offers


def test_every_command_offers_what_it_offered_before() -> None:
    before = json.loads(SNAPSHOT.read_text())
    now = json.loads(json.dumps(command_offers()))
    assert sorted(now) == sorted(before), "commands added or removed"
    for name in before:
        assert now[name] == before[name], f"{name} changed what it offers"


if __name__ == "__main__":
    print(json.dumps(command_offers(), indent=1, sort_keys=True))
