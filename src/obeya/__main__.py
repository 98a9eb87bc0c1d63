"""`python -m obeya`: the `obeya` command, as `obeya serve` starts its web workers."""

from obeya.cli.main import run

run()
