"""The command line (`costmodel report | check | diff | calibrate`); nothing imports this
package."""
from .main import main

__all__ = ["main"]
