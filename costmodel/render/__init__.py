"""Renderers: turn a Report into text, HTML, JSON, CSV or markdown. They never import torch."""
