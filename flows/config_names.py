"""The names under which fireline's settings are found (shared by the model and the readers)."""

from pathlib import Path

ENV_PREFIX = "FIRELINE_"  # FIRELINE_<FIELD>, FIRELINE_<SECTION>_<FIELD>
CONFIG_VARIABLE = "FIRELINE_CONFIG"  # names the TOML file
DEFAULT_FILE = Path("fireline.toml")  # read when it exists and FIRELINE_CONFIG is unset
SECRET_PREFIX = "secret:"  # secret:NAME is replaced by the environment variable NAME
