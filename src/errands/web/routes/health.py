"""Placeholder: the webobs helper writes this router."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
