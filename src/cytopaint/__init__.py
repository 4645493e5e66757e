"""cytopaint: repair artifacts in cell-body stained brain sections with a DDPM and RePaint."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cytopaint")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
