"""Configuration: the bundled profile, user files laid over it, validation and env overrides."""

import pytest

from bot.config import DEFAULT_CTGOV_URL, DEFAULT_EUTILS_URL, ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "spsbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_profile_loads_with_six_themes():
    config = load_config(env={})
    assert config.topic.name == "Stiff Person Syndrome"
    assert config.theme_names == ["immunomodulation", "symptomatic", "registries",
                                  "multidisciplinary", "biomarkers", "diagnosis"]
    assert config.pubmed["base_url"] == DEFAULT_EUTILS_URL
    assert config.clinicaltrials["base_url"] == DEFAULT_CTGOV_URL


@pytest.mark.parametrize("needle", [
    '"Stiff-Person Syndrome"[mh]', '"stiff person"[tiab]', '"stiff-man"[tiab]', '"stiff man"[tiab]',
    '"stiff-limb"[tiab]', '"progressive encephalomyelitis with rigidity"[tiab]', 'GAD65[tiab]',
    '"glycine receptor"[tiab]', 'amphiphysin[tiab]', '"SPS-plus"[tiab]', '"PERM"[tiab]',
])
def test_bundled_query_covers_synonyms_and_spectrum(needle):
    assert needle in load_config(env={}).topic.pubmed_query


def test_bundled_query_parentheses_balance():
    query = load_config(env={}).topic.pubmed_query
    depth = 0
    for char in query:
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0


def test_user_file_overrides_only_what_it_sets(tmp_path):
    path = write(tmp_path, '[digest]\nmax_items = 5\n[sources.pubmed]\nemail = "me@example.org"\n')
    config = load_config(path, env={})
    assert config.digest["max_items"] == 5
    assert config.digest["period_days"] == 7          # kept from the bundled profile
    assert config.pubmed["email"] == "me@example.org"
    assert config.topic.name == "Stiff Person Syndrome"


def test_other_disease_profile(tmp_path):
    path = write(tmp_path, '[topic]\nname = "Myasthenia gravis"\npubmed_query = "myasthenia gravis[mh]"\n'
                           '[[themes]]\nname = "therapy"\ndescription = "treatment"\n')
    config = load_config(path, env={})
    assert config.topic.name == "Myasthenia gravis"
    assert config.theme_names == ["therapy"]


def test_env_overrides_endpoints_and_smtp(tmp_path):
    env = {"SPSBOT_EUTILS_URL": "http://127.0.0.1:9/eutils", "SPSBOT_CTGOV_URL": "http://127.0.0.1:9/v2",
           "NCBI_EMAIL": "ops@example.org", "SPSBOT_SMTP_URL": "smtp://127.0.0.1:8025",
           "SPSBOT_SMTP_FROM": "bot@example.org"}
    config = load_config(env=env)
    assert config.pubmed["base_url"] == "http://127.0.0.1:9/eutils"
    assert config.clinicaltrials["base_url"] == "http://127.0.0.1:9/v2"
    assert config.pubmed["email"] == "ops@example.org"
    assert config.email["smtp_url"] == "smtp://127.0.0.1:8025"
    assert config.email["from"] == "bot@example.org"


@pytest.mark.parametrize("text, expected", [
    ('[digest]\nmax_itemz = 5\n', "unknown key 'max_itemz' in [digest] (line 2)"),
    ('[digest]\n\nmax_items = "lots"\n', "'max_items' in [digest] must be an integer, got str (line 3)"),
    ('[sources.pubmed]\nbase_url = "ftp://x"\n', "is not an http(s) URL: 'ftp://x' (line 2)"),
    ('[topic]\nname = "X"\npubmed_query = "  "\n', "'pubmed_query' in [topic] is empty (line 3)"),
    ('[topic]\nname = "X"\n', "[topic] is missing required key 'pubmed_query'"),
    ('[digest]\nmax_items = 500\n', "'max_items' in [digest] must be between 1 and 200, got 500 (line 2)"),
    ('[email]\nsmtp_url = "http://mail"\n', "'smtp_url' in [email] must start smtp://"),
    ('[bogus]\nx = 1\n', "unknown section [bogus]"),
    ('[sources.pubmed]\nmin_interval = -1\n',
     "'min_interval' in [sources.pubmed] must be 0 or more seconds, got -1 (line 2)"),
    ('[digest\nmax_items = 5\n', "invalid TOML"),
    ('[[themes]]\nname = "a"\ndescription = "d"\n[[themes]]\nname = "a"\ndescription = "e"\n',
     "duplicate theme name(s): a"),
])
def test_each_mistake_gets_one_clear_line(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    message = str(info.value)
    assert expected in message
    assert all(line.startswith("config error: ") for line in message.splitlines())


def test_every_mistake_is_reported_not_just_the_first(tmp_path):
    path = write(tmp_path, '[digest]\nmax_itemz = 5\nperiod_days = "weekly"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert len(info.value.errors) == 2


def test_bad_env_url_is_refused():
    with pytest.raises(ConfigError, match="not an http"):
        load_config(env={"SPSBOT_EUTILS_URL": "not a url"})


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", env={})


def test_acronyms_are_declared_not_taken_from_the_slug(tmp_path):
    assert load_config().topic.acronyms == ("SPS",)
    path = tmp_path / "mg.toml"
    path.write_text('[topic]\nname = "Myasthenia gravis"\nslug = "mg"\npubmed_query = "x"\n', encoding="utf-8")
    assert load_config(path).topic.acronyms == ()  # another topic inherits none, and the slug is not one
    path.write_text('[topic]\nname = "Myasthenia gravis"\npubmed_query = "x"\nacronyms = "MG"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'acronyms' in \\[topic\\] must be a list, got str \\(line 4\\)"):
        load_config(path)


def test_mesh_headings_are_a_list_of_strings_or_absent(tmp_path):
    assert load_config().topic.mesh == ("Stiff-Person Syndrome",)
    path = tmp_path / "nmosd.toml"
    path.write_text('[topic]\nname = "NMOSD"\npubmed_query = "x"\n', encoding="utf-8")
    assert load_config(path).topic.mesh is None  # absent: another topic inherits none (weak.py reads its names)
    path.write_text('[topic]\nname = "NMOSD"\npubmed_query = "x"\nmesh = "Neuromyelitis Optica"\n', encoding="utf-8")
    one_line = "^config error: [^\\n]*'mesh' in \\[topic\\] must be a list, got str \\(line 4\\)$"
    with pytest.raises(ConfigError, match=one_line):
        load_config(path)
    path.write_text('[topic]\nname = "NMOSD"\npubmed_query = "x"\nmesh = [1]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'mesh' in \\[topic\\] must be a list of strings"):
        load_config(path)
