"""`odradek completion bash|zsh`: a completion script made from the parser itself, so that
it knows every subcommand and flag of this version."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator

SCRIPT = """\
# odradek {shell} completion: eval "$(odradek completion {shell})" in ~/.{rc}
{prelude}_odradek_words() {{
  case "$1" in
{cases}
  esac
}}

_odradek() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" path="" next i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    [[ "$w" == -* ]] && continue
    next="${{path:+$path }}$w"
    if [[ -n "$(_odradek_words "$next")" ]]; then path="$next"; fi
  done
  COMPREPLY=($(compgen -W "$(_odradek_words "$path")" -- "$cur"))
}}

complete -o default -F _odradek odradek
"""
# zsh runs the bash function through its bash completion emulation.
ZSH_PRELUDE = "autoload -U +X bashcompinit && bashcompinit\n"


def add_completion_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh)",
                       description='Prints a completion script: eval "$(odradek completion '
                                   'bash)" in ~/.bashrc, or zsh in ~/.zshrc.')
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=_completion)


def _words(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, list[str]]]:
    """(path of subcommands, what may follow it) for the parser and its subparsers."""
    words: list[str] = []
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                words.append(name)
                children.append((name, child))
        words.extend(action.option_strings)
    yield path, words
    for name, child in children:
        yield from _words(child, f"{path} {name}".strip())


def _case_label(path: str) -> str:
    return shlex.quote(path) if path else '""'  # shlex.quote("") is '' : the same to bash


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    cases = "\n".join(f"    {_case_label(path)}) echo {shlex.quote(' '.join(words))} ;;"
                      for path, words in _words(parser, ""))
    return SCRIPT.format(shell=shell, rc="bashrc" if shell == "bash" else "zshrc",
                         prelude=ZSH_PRELUDE if shell == "zsh" else "", cases=cases)


def _completion(args: argparse.Namespace) -> int:
    from odradek.cli.main import build_parser

    print(completion_script(build_parser(), args.shell), end="")
    return 0
