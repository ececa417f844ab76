"""Pre-training stage: LPCE on a rendered dataset, on Ray Train."""
