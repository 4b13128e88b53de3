"""Package list for setuptools (everything else is in pyproject.toml).

``streamsep`` and its subpackages are found automatically. ``tools/`` (training, export,
Spleeter conversion; the only code that imports TensorFlow) is installed as the top-level
package ``streamsep_tools``, so ``pip install 'streamsep[tools]'`` can convert a Spleeter
checkpoint without a source checkout (``python -m streamsep_tools.convert_spleeter``). In a
checkout it stays ``tools`` (``python -m tools.convert_spleeter``); its modules import each
other relatively so they work under either name.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["streamsep", "streamsep.*"]), "streamsep_tools"],
    package_dir={"streamsep_tools": "tools"},
)
