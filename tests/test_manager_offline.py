"""Hub reachability: a cached TCP check so hub loads go local-cache-only at once when the Hub is down."""

from __future__ import annotations

import socket

import huggingface_hub.constants as hf_constants
import pytest
import transformers

from pipelines.context import AppContext
from pipelines.errors import ModelLoadError
from pipelines.models import hub


@pytest.fixture
def online(monkeypatch):
    """HF_HUB_OFFLINE off (conftest turns it on), no proxies, a fresh reachability cache."""
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def listening():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_refused_connection_means_unreachable(online):
    online.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert hub.HubCheck().reachable() is False


def test_unknown_host_means_unreachable(online):
    online.setattr(hf_constants, "ENDPOINT", "https://no-such-host.invalid")
    assert hub.hub_address() == ("no-such-host.invalid", 443)
    assert hub.HubCheck().reachable() is False


def test_listening_endpoint_is_reachable(online, listening):
    online.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{listening}")
    assert hub.HubCheck().reachable() is True


def test_answer_is_cached_then_refreshed(online):
    calls = []
    online.setattr(hub, "probe", lambda host, port, timeout: calls.append((host, port, timeout)) or False)
    check = hub.HubCheck()
    assert check.reachable() is False
    assert check.reachable() is False
    assert len(calls) == 1
    check.checked -= hub.HUB_CHECK_SECONDS + 1  # a minute later
    check.reachable()
    assert len(calls) == 2 and calls[0][2] == hub.HUB_CONNECT_TIMEOUT
    check.reset()
    check.reachable()
    assert len(calls) == 3


def test_each_manager_owns_its_answer(online, ctx: AppContext):
    """The cached answer lives on the manager (the context), not in module globals."""
    online.setattr(hub, "probe", lambda *a: False)
    assert ctx.manager.hub.reachable() is False and ctx.manager.hub.checked > float("-inf")
    assert hub.HubCheck().checked == float("-inf")


def test_offline_mode_answers_without_probing(online):
    online.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    online.setattr(hub, "probe", lambda *a: pytest.fail("probed although HF_HUB_OFFLINE is set"))
    assert hub.HubCheck().reachable() is False


def test_proxy_is_probed_instead_of_the_hub(online):
    online.setattr(hf_constants, "ENDPOINT", "https://huggingface.co")
    online.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    online.delenv("NO_PROXY", raising=False)
    online.delenv("no_proxy", raising=False)
    assert hub.hub_address() == ("proxy.example", 3128)


def spy_from_pretrained(monkeypatch, cls) -> list[dict]:
    """Record the keyword arguments of ``cls.from_pretrained`` and fail fast like a missing model would."""
    seen: list[dict] = []

    def fake(location, **kwargs):
        seen.append(kwargs)
        raise OSError(f"We couldn't connect to load the files for {location}")

    monkeypatch.setattr(cls, "from_pretrained", fake)
    return seen


def test_unreachable_hub_loads_local_cache_only(online, ctx: AppContext):
    online.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    seen = spy_from_pretrained(online, transformers.AutoConfig)
    with pytest.raises(ModelLoadError, match="unreachable"):
        ctx.manager.load("nobody-here/no-such-model-xyz")
    assert seen and seen[0]["local_files_only"] is True


def test_reachable_hub_is_asked(online, ctx: AppContext):
    online.setattr(hub, "probe", lambda *a: True)
    seen = spy_from_pretrained(online, transformers.AutoConfig)
    with pytest.raises(ModelLoadError):
        ctx.manager.load("nobody-here/no-such-model-xyz")
    assert seen and "local_files_only" not in seen[0]


def test_tokenizer_and_weights_go_local_only_too(online, ctx: AppContext):
    online.setattr(hub, "probe", lambda *a: False)
    seen = spy_from_pretrained(online, transformers.AutoTokenizer)
    with pytest.raises(ModelLoadError, match="unreachable"):
        ctx.manager.load("nobody-here/no-such-model-xyz", kind="causal-lm")  # kind given: no config probe
    assert seen[0]["local_files_only"] is True


def test_real_offline_failure_is_clear(online, ctx: AppContext):
    """No spies: huggingface_hub itself, told local-only, fails with our offline sentence."""
    online.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelLoadError) as info:
        ctx.manager.load("nobody-here/no-such-model-xyz")
    assert "not in the local cache and the Hub is unreachable" in str(info.value)
    assert ctx.manager.hub.answer is False and ctx.manager.hub.checked > float("-inf")
