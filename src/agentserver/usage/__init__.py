"""Usage (what each user's runs cost) and quotas (what each user may spend per day and month)."""
