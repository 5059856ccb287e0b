"""Every source's client factory has one shape: make_client(base_url, *, min_interval=None, **http_options)."""

import inspect

import pytest

from bot.config import load_config
from bot.sources import clinicaltrials, feeds, pubmed


@pytest.mark.parametrize("module, url, default_interval", [
    (pubmed, "https://eutils.ncbi.nlm.nih.gov/entrez/eutils", pubmed.INTERVAL_NO_KEY),
    (clinicaltrials, "https://clinicaltrials.gov/api/v2", 1.0),
    (feeds, "https://www.jpeds.com/rss/current", 1.0),
])
def test_one_factory_shape(module, url, default_interval):
    params = list(inspect.signature(module.make_client).parameters.values())
    assert params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    interval = inspect.signature(module.make_client).parameters["min_interval"]
    assert interval.kind is inspect.Parameter.KEYWORD_ONLY and interval.default is None
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    client = module.make_client(url, sleep=None, backoff=None, max_retries=2)  # None options: left out
    assert client.min_interval == default_interval and client.max_retries == 2
    assert client.backoff == 1.0  # HttpClient's own default, not None
    assert module.make_client(url, min_interval=0).min_interval == 0


def test_configured_clients_read_their_section(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[sources.clinicaltrials]\nbase_url = "http://127.0.0.1:9/api/v2"\nmin_interval = 2.5\n'
                    '[sources.pubmed]\nbase_url = "http://127.0.0.1:9/eutils"\ntool = "mybot"\n'
                    'email = "me@example.org"\n', encoding="utf-8")
    config = load_config(path, env={})
    ctgov = clinicaltrials.configured_client(config)
    assert (ctgov.base_url, ctgov.min_interval) == ("http://127.0.0.1:9/api/v2", 2.5)
    client = pubmed.configured_client(config, env={"NCBI_API_KEY": "k"})
    assert client.base_url == "http://127.0.0.1:9/eutils" and client.min_interval == pubmed.INTERVAL_WITH_KEY
    assert client.default_params == {"tool": "mybot", "email": "me@example.org", "api_key": "k"}
    assert "api_key" in client.secret_params
