"""Exporters: where recorded pages and entries go."""

from .background import BackgroundProcessHarExporter, BackgroundThreadHarExporter, ExecutorHarExporter
from .base import HarExporter
from .composite import CompositeHarExporter
from .files import FileHarExporter, IoHarExporter
from .live import LiveFileHarExporter
from .logging import LoggingHarExporter
from .model import ModelHarExporter

__all__ = [
    "HarExporter",
    "ModelHarExporter",
    "IoHarExporter",
    "FileHarExporter",
    "LiveFileHarExporter",
    "LoggingHarExporter",
    "CompositeHarExporter",
    "ExecutorHarExporter",
    "BackgroundThreadHarExporter",
    "BackgroundProcessHarExporter",
]
