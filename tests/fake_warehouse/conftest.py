# Temporary: the fixtures belong in the root tests/conftest.py via
# pytest_plugins = ["ctg_app.fake_warehouse.pytest_plugin"]; until that exists, import them here.
from ctg_app.fake_warehouse.pytest_plugin import *  # noqa
