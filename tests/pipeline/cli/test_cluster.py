"""`cluster status` (and `cameras`, which take the same `--address`): an address that names
no host and port is refused by argparse, in one line, before Ray is asked."""

from __future__ import annotations

import pytest

from pipeline.cli import main
from pipeline.cli.exit_codes import EXIT_USAGE


@pytest.mark.parametrize("address", [":6379", "127.0.0.1:abc", "ray://", "10.0.0.5:99999"])
@pytest.mark.parametrize("command", [["cluster", "status"], ["cameras", "list"]])
def test_an_address_without_a_host_or_port_is_refused_in_one_line_before_ray_is_asked(
    command: list[str], address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--address", address])
    assert exited.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: argument --address: ") or err.startswith("error: --address: ")
    assert "a host and a port" in err and len(err.strip().splitlines()) == 1
