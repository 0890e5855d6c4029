"""Tests of the FHIR Plan-Net API (/fhir)."""
