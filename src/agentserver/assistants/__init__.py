"""`/api/v1/assistants`: the deployment's assistants (read only) and the caller's own (CRUD)."""
