"""Demo data: a deterministic generator of clinics and providers, and its database loader."""
