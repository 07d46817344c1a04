"""The SSRF policy's static half: literal hosts of URL templates, refused before any lookup."""

from __future__ import annotations

import pytest

from autom.core.netpolicy import Policy, literal_host, refused_reason


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1/x", "127.0.0.1"),
        ("http://[::1]:8080/", "::1"),
        ("http://user@192.168.1.1/?q={{ inputs.q }}", "192.168.1.1"),
        ("http://127.0.0.1:{{ inputs.port }}/", "127.0.0.1"),
        ("https://api.example.com/{{ inputs.repo }}", "api.example.com"),
        ("https://{{ inputs.host }}/x", None),
        ("http://10.0.0.{{ inputs.n }}/", None),
        ("{{ secrets.WEBHOOK_URL }}", None),
        ("not a url", None),
    ],
)
def test_literal_host_is_known_only_when_written_out(url: str, host: str | None) -> None:
    assert literal_host(url) == host


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "169.254.169.254", "10.1.2.3", "::1", "::ffff:10.0.0.1", "2130706433",
     "0x7f.1", "localhost", "api.localhost", "metadata.google.internal"],
)  # fmt: skip
def test_non_public_literal_hosts_are_refused_unless_allow_listed(host: str) -> None:
    assert refused_reason(host, Policy()) is not None
    allowed = Policy.from_lists(["0.0.0.0/0", "::/0"], ["metadata.google.internal"])
    assert refused_reason(host, allowed) is None


def test_public_and_unresolved_names_are_left_to_the_run_time_guard() -> None:
    assert refused_reason("93.184.216.34", Policy()) is None
    assert refused_reason("api.example.com", Policy()) is None
