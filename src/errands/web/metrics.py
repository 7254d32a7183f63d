"""Placeholder: the webobs helper writes /metrics."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
