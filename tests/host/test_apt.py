"""The private apt root: mirror derivation, sources list, version order (dpkg as oracle)."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from libtrace.host.apt import (
    AptRoot,
    AptSource,
    archive_uris,
    compare_versions,
    parse_sources,
    sources_list,
)
from libtrace.host.errors import DownloadError

DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.invalid/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.invalid/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# deb http://commented.invalid/debian bookworm main
deb [arch=amd64 signed-by=/etc/k.gpg] http://proxy.invalid:3142/debian/ bullseye main
deb http://thirdparty.invalid/apt stable-extra main
"""


def test_deb822_and_one_line_sources_are_parsed(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(DEB822)
    (tmp_path / "extra.list").write_text(ONE_LINE)
    (tmp_path / "ignored.list.disabled").write_text("deb http://no.invalid/debian sid main\n")
    entries = parse_sources([tmp_path])
    assert entries == [
        AptSource(
            "http://mirror.invalid/debian",
            ("bookworm", "bookworm-updates"),
            "/usr/share/keyrings/debian-archive-keyring.gpg",
        ),
        AptSource("http://mirror.invalid/debian-security", ("bookworm-security",), None),
        AptSource("http://proxy.invalid:3142/debian", ("bullseye",), "/etc/k.gpg"),
        AptSource("http://thirdparty.invalid/apt", ("stable-extra",), None),
    ]
    assert archive_uris(entries) == (
        "http://mirror.invalid/debian",
        "http://mirror.invalid/debian-security",
    )


def test_without_a_security_entry_the_security_archive_follows_debians_layout() -> None:
    entries = [AptSource("http://proxy.invalid/debian", ("bookworm",))]
    assert archive_uris(entries) == (
        "http://proxy.invalid/debian",
        "http://proxy.invalid/debian-security",
    )


def test_no_debian_archive_is_a_clear_error() -> None:
    with pytest.raises(DownloadError, match="names no Debian archive"):
        archive_uris([AptSource("http://thirdparty.invalid/apt", ("foo",))])


def test_the_sources_list_puts_each_suite_on_its_archive() -> None:
    entries = [
        AptSource("http://m.invalid/debian", ("bookworm",)),
        AptSource("http://m.invalid/debian-security", ("bookworm-security",)),
    ]
    text = sources_list(("bullseye", "bullseye-security"), entries)
    lines = text.splitlines()
    assert lines[0].endswith("http://m.invalid/debian bullseye main")
    assert lines[1].endswith("http://m.invalid/debian-security bullseye-security main")
    assert all(line.startswith("deb ") for line in lines)


def test_the_systems_own_configuration_yields_a_mirror() -> None:
    archive, security = archive_uris(parse_sources())
    assert archive.startswith(("http://", "https://", "file:", "mirror+"))
    assert security


def test_the_apt_root_points_every_state_directory_into_itself(tmp_path: Path) -> None:
    options = AptRoot(tmp_path / "apt").options()
    settings = dict(o.split("=", 1) for o in options if o != "-o")
    for key in ("Dir::State::Lists", "Dir::Cache", "Dir::Etc::SourceList"):
        assert settings[key].startswith(str(tmp_path / "apt")), key
    assert settings["Dir::Etc::SourceParts"] == "/dev/null"
    assert settings["Dir::State::status"] == "/dev/null"


VERSIONS = [
    "5.10.262-1",
    "5.10.223-1",
    "6.1.180-1~deb11u1",
    "6.1.180-1",
    "6.12.95-1~bpo12+1",
    "6.12.95-1",
    "6.12.90-2~bpo12+1",
    "1:1.0",
    "1.0-1",
    "1.0~rc1-1",
    "1.0a-1",
    "1.0+b1",
    "1.0.1",
]


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations(VERSIONS, 2)))
def test_versions_order_as_dpkg_orders_them(a: str, b: str) -> None:
    ours = compare_versions(a, b)
    dpkg_lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    dpkg_eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b]).returncode == 0
    assert (ours < 0, ours == 0) == (dpkg_lt, dpkg_eq)
