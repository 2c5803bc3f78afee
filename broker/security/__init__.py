"""Security: who a connection is (principals), how it proves it (TLS, SASL), what it may do
(ACLs) and how much it may use (quotas)."""
