"""The protocol layer: pure OAuth 2.0 functions over plain data and an httpx client.

No Django models, no request objects, no database: the flows (``oauthconn.flows``) call these
and own the state. Modules:

- :mod:`~oauthconn.oauth.pkce`: state, nonce, PKCE verifier and S256 challenge (RFC 7636).
- :mod:`~oauthconn.oauth.authorize`: the authorization request URL (RFC 6749 §4.1.1).
- :mod:`~oauthconn.oauth.callback`: parsing and checking the authorization response
  (RFC 6749 §4.1.2, RFC 9207).
- :mod:`~oauthconn.oauth.client_auth`: client authentication at the token endpoint
  (RFC 6749 §2.3).
- :mod:`~oauthconn.oauth.token`: code exchange, refresh, client credentials (RFC 6749
  §4.1.3, §4.4, §6).
- :mod:`~oauthconn.oauth.token_response`: strict parsing of token responses into a
  ``TokenSet`` (RFC 6749 §5).
- :mod:`~oauthconn.oauth.revoke`: token revocation (RFC 7009).
"""
