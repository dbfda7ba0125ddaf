"""What pyproject.toml cannot say: the top-level resources/ folder (icons) ships inside the package as
`pachtray/resources`, so a wheel has it too, while resources/ stays its one source (the .deb, the
bundle and the checkout read it there)."""

from setuptools import find_packages, setup

setup(
    package_dir={"": "app", "pachtray.resources": "resources"},
    packages=[*find_packages("app"), "pachtray.resources"],
    package_data={"pachtray.resources": ["*.svg"]},
)
