"""YAML as people write it: `4e-5`, `1e3` and `.5` are numbers.

PyYAML follows YAML 1.1, whose float pattern needs a dot and a signed exponent, so `4e-5`
and `1e3` arrive as strings and fail far from where they were written. This loader adds the
YAML 1.2 core-schema number pattern; everything else is `yaml.safe_load`.
"""

from __future__ import annotations

import re

_FLOAT_12 = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                          |[-+]?\.(?:inf|Inf|INF)
                          |\.(?:nan|NaN|NAN))$""", re.X)
_INT = re.compile(r"^[-+]?[0-9]+$")

_loader_class = None


def _loader():
    global _loader_class
    if _loader_class is None:
        import yaml

        class NumberLoader(yaml.SafeLoader):
            pass

        # A float resolver for the 1.2 pattern; plain integers keep resolving to int first
        # because PyYAML tries resolvers in order and the int one is already registered.
        NumberLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))
        _loader_class = NumberLoader
    return _loader_class


def load_yaml(text: str):
    """`yaml.safe_load` that also reads `4e-5` and `1e3` as floats. Raises `yaml.YAMLError`."""
    import yaml

    return yaml.load(text, Loader=_loader())


def parse_scalar(text: str):
    """A command-line value (`--set k=v`, `method[k=v]`) read as YAML; unparseable text stays a string."""
    import yaml

    if _INT.match(text.strip()):
        return int(text.strip())
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return text
