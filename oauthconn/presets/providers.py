"""The shipped provider presets: data only, one ``Preset(...)`` per authorization server.

Endpoints are the providers' documented ones. A revocation endpoint is listed only where it
takes an RFC 7009 request (``token=...`` with client authentication); several providers revoke
through their own API instead (GitHub, Slack's ``auth.revoke``, Dropbox, HubSpot, Zendesk), and
then the field is empty. ``sends_issuer`` (RFC 9207) is set only where the provider documents
``iss`` in its authorization responses; none of the public ones here does yet.
"""

from __future__ import annotations

from oauthconn.presets.record import Preset
from oauthconn.presets.setup_notes import with_setup_notes
from oauthconn.presets.validators import dns_label, host_name, local_origin

CODE = ("authorization_code",)
CODE_PKCE = ("authorization_code", "authorization_code_pkce")
CODE_PKCE_CC = ("authorization_code", "authorization_code_pkce", "client_credentials")
CODE_CC = ("authorization_code", "client_credentials")

GITHUB = Preset(
    key="github",
    name="GitHub",
    authorization_endpoint="https://github.com/login/oauth/authorize",
    token_endpoint="https://github.com/login/oauth/access_token",
    default_scopes=("read:user",),
    pkce=True,
    client_auth_method="client_secret_post",
    grant_types=CODE_PKCE,
    api_base_url="https://api.github.com/",
    test_path="user",
    docs_url="https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps",
)

GITLAB = Preset(
    key="gitlab",
    name="GitLab",
    issuer="https://gitlab.com",
    authorization_endpoint="https://gitlab.com/oauth/authorize",
    token_endpoint="https://gitlab.com/oauth/token",
    revocation_endpoint="https://gitlab.com/oauth/revoke",
    userinfo_endpoint="https://gitlab.com/oauth/userinfo",
    jwks_uri="https://gitlab.com/oauth/discovery/keys",
    default_scopes=("read_user",),
    pkce=True,
    client_auth_method="client_secret_post",
    grant_types=CODE_PKCE,
    api_base_url="https://gitlab.com/api/v4/",
    test_path="user",
    docs_url="https://docs.gitlab.com/api/oauth2/",
)

GOOGLE = Preset(
    key="google",
    name="Google",
    issuer="https://accounts.google.com",
    authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
    token_endpoint="https://oauth2.googleapis.com/token",
    revocation_endpoint="https://oauth2.googleapis.com/revoke",
    userinfo_endpoint="https://openidconnect.googleapis.com/v1/userinfo",
    jwks_uri="https://www.googleapis.com/oauth2/v3/certs",
    default_scopes=("openid", "email", "profile"),
    pkce=True,
    client_auth_method="client_secret_post",
    grant_types=CODE_PKCE,
    api_base_url="https://www.googleapis.com/",
    test_path="oauth2/v3/userinfo",
    # Google issues a refresh token only for offline access, and again only on fresh consent.
    extra_authorize_params={"access_type": "offline", "prompt": "consent"},
    # Incremental authorization: the new token also covers the scopes granted before.
    incremental_scopes_param={"include_granted_scopes": "true"},
    docs_url="https://developers.google.com/identity/protocols/oauth2/web-server",
)

MICROSOFT = Preset(
    key="microsoft",
    name="Microsoft Entra ID",
    # No issuer: ID tokens carry the tenant's GUID ("https://login.microsoftonline.com/<guid>/v2.0")
    # whatever was typed as {tenant} (a domain, "common", "organizations"). Use the issuer URL
    # option with the tenant's discovery document to check ID tokens.
    authorization_endpoint="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    token_endpoint="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    userinfo_endpoint="https://graph.microsoft.com/oidc/userinfo",
    jwks_uri="https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
    default_scopes=("openid", "profile", "email", "offline_access", "User.Read"),
    pkce=True,
    client_auth_method="client_secret_post",
    grant_types=CODE_PKCE_CC,
    api_base_url="https://graph.microsoft.com/v1.0/",
    test_path="me",
    docs_url="https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow",
    parameters=("tenant",),
    parameter_labels={"tenant": "Tenant"},
    parameter_help={
        "tenant": "Your Microsoft Entra tenant: its ID or domain (contoso.onmicrosoft.com), "
        "or common, organizations or consumers."
    },
)

SLACK = Preset(
    key="slack",
    name="Slack",
    authorization_endpoint="https://slack.com/oauth/v2/authorize",
    token_endpoint="https://slack.com/api/oauth.v2.access",
    # Slack's v2 flow takes comma-separated lists in both scope= (bot) and user_scope= (user).
    scope_separator=",",
    default_scopes=("channels:read", "chat:write"),
    client_auth_method="client_secret_basic",
    grant_types=CODE,
    api_base_url="https://slack.com/api/",
    test_path="auth.test",
    docs_url="https://api.slack.com/authentication/oauth-v2",
)

SALESFORCE = Preset(
    key="salesforce",
    name="Salesforce",
    issuer="https://{domain}",
    authorization_endpoint="https://{domain}/services/oauth2/authorize",
    token_endpoint="https://{domain}/services/oauth2/token",
    revocation_endpoint="https://{domain}/services/oauth2/revoke",
    userinfo_endpoint="https://{domain}/services/oauth2/userinfo",
    jwks_uri="https://{domain}/id/keys",
    default_scopes=("api", "refresh_token"),
    pkce=True,
    client_auth_method="client_secret_post",
    grant_types=CODE_PKCE_CC,
    # The data API lives on the org's own host (the token response's instance_url), so use
    # the My Domain host as {domain} to call it; userinfo answers on any login host.
    api_base_url="https://{domain}/",
    test_path="services/oauth2/userinfo",
    docs_url="https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm",
    parameters=("domain",),
    parameter_defaults={"domain": "login.salesforce.com"},
    parameter_labels={"domain": "Login host"},
    parameter_help={
        "domain": "The host to sign in at: your My Domain host (acme.my.salesforce.com), "
        "login.salesforce.com (the default) or test.salesforce.com for a sandbox."
    },
    validators={"domain": host_name},
)

DROPBOX = Preset(
    key="dropbox",
    name="Dropbox",
    authorization_endpoint="https://www.dropbox.com/oauth2/authorize",
    token_endpoint="https://api.dropboxapi.com/oauth2/token",
    default_scopes=("account_info.read",),
    pkce=True,
    client_auth_method="client_secret_basic",
    grant_types=CODE_PKCE,
    api_base_url="https://api.dropboxapi.com/2/",
    # Dropbox's RPC endpoints are POST only, this one with an empty body.
    test_path="users/get_current_account",
    test_method="POST",
    # Without it Dropbox issues short-lived access tokens and no refresh token.
    extra_authorize_params={"token_access_type": "offline"},
    docs_url="https://developers.dropbox.com/oauth-guide",
)

ZOOM = Preset(
    key="zoom",
    name="Zoom",
    authorization_endpoint="https://zoom.us/oauth/authorize",
    token_endpoint="https://zoom.us/oauth/token",
    revocation_endpoint="https://zoom.us/oauth/revoke",
    pkce=True,
    client_auth_method="client_secret_basic",
    grant_types=CODE_PKCE,
    api_base_url="https://api.zoom.us/v2/",
    test_path="users/me",
    docs_url="https://developers.zoom.us/docs/integrations/oauth/",
)

HUBSPOT = Preset(
    key="hubspot",
    name="HubSpot",
    authorization_endpoint="https://app.hubspot.com/oauth/authorize",
    token_endpoint="https://api.hubapi.com/oauth/v1/token",
    default_scopes=("oauth", "crm.objects.contacts.read"),
    client_auth_method="client_secret_post",
    grant_types=CODE,
    api_base_url="https://api.hubapi.com/",
    test_path="account-info/v3/details",
    docs_url="https://developers.hubspot.com/docs/api/oauth-quickstart-guide",
)

ATLASSIAN = Preset(
    key="atlassian",
    name="Atlassian (Jira, Confluence)",
    authorization_endpoint="https://auth.atlassian.com/authorize",
    token_endpoint="https://auth.atlassian.com/oauth/token",
    default_scopes=("read:me", "read:jira-work", "offline_access"),
    client_auth_method="client_secret_post",
    grant_types=CODE,
    api_base_url="https://api.atlassian.com/",
    test_path="me",
    extra_authorize_params={"audience": "api.atlassian.com", "prompt": "consent"},
    docs_url="https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/",
)

NOTION = Preset(
    key="notion",
    name="Notion",
    authorization_endpoint="https://api.notion.com/v1/oauth/authorize",
    token_endpoint="https://api.notion.com/v1/oauth/token",
    client_auth_method="client_secret_basic",
    grant_types=CODE,
    # Notion's API also wants a Notion-Version header on every call.
    api_base_url="https://api.notion.com/v1/",
    test_path="users/me",
    extra_authorize_params={"owner": "user"},
    docs_url="https://developers.notion.com/docs/authorization",
)

OKTA = Preset(
    key="okta",
    name="Okta",
    # The "default" custom authorization server; register your own preset for another one.
    issuer="https://{domain}/oauth2/default",
    authorization_endpoint="https://{domain}/oauth2/default/v1/authorize",
    token_endpoint="https://{domain}/oauth2/default/v1/token",
    revocation_endpoint="https://{domain}/oauth2/default/v1/revoke",
    userinfo_endpoint="https://{domain}/oauth2/default/v1/userinfo",
    jwks_uri="https://{domain}/oauth2/default/v1/keys",
    default_scopes=("openid", "profile", "email", "offline_access"),
    pkce=True,
    client_auth_method="client_secret_basic",
    grant_types=CODE_PKCE_CC,
    api_base_url="https://{domain}/",
    test_path="oauth2/default/v1/userinfo",
    docs_url="https://developer.okta.com/docs/guides/implement-grant-type/authcode/main/",
    parameters=("domain",),
    parameter_labels={"domain": "Okta domain"},
    parameter_help={"domain": "Your Okta org's host name, e.g. acme.okta.com."},
    validators={"domain": host_name},
)

AUTH0 = Preset(
    key="auth0",
    name="Auth0",
    issuer="https://{domain}/",  # Auth0's issuer has the trailing slash
    authorization_endpoint="https://{domain}/authorize",
    token_endpoint="https://{domain}/oauth/token",
    revocation_endpoint="https://{domain}/oauth/revoke",
    userinfo_endpoint="https://{domain}/userinfo",
    jwks_uri="https://{domain}/.well-known/jwks.json",
    default_scopes=("openid", "profile", "email", "offline_access"),
    pkce=True,
    client_auth_method="client_secret_post",
    grant_types=CODE_PKCE_CC,
    api_base_url="https://{domain}/",
    test_path="userinfo",
    docs_url="https://auth0.com/docs/get-started/authentication-and-authorization-flow/authorization-code-flow",
    parameters=("domain",),
    parameter_labels={"domain": "Auth0 domain"},
    parameter_help={"domain": "Your Auth0 tenant's domain, e.g. acme.eu.auth0.com."},
    validators={"domain": host_name},
)

BOX = Preset(
    key="box",
    name="Box",
    authorization_endpoint="https://account.box.com/api/oauth2/authorize",
    token_endpoint="https://api.box.com/oauth2/token",
    revocation_endpoint="https://api.box.com/oauth2/revoke",
    client_auth_method="client_secret_post",
    # Box's client credentials grant also needs box_subject_type / box_subject_id token params.
    grant_types=CODE_CC,
    api_base_url="https://api.box.com/2.0/",
    test_path="users/me",
    docs_url="https://developer.box.com/guides/authentication/oauth2/",
)

DISCORD = Preset(
    key="discord",
    name="Discord",
    authorization_endpoint="https://discord.com/oauth2/authorize",
    token_endpoint="https://discord.com/api/oauth2/token",
    revocation_endpoint="https://discord.com/api/oauth2/token/revoke",
    default_scopes=("identify",),
    client_auth_method="client_secret_basic",
    grant_types=CODE_CC,
    api_base_url="https://discord.com/api/v10/",
    test_path="users/@me",
    docs_url="https://discord.com/developers/docs/topics/oauth2",
)

SPOTIFY = Preset(
    key="spotify",
    name="Spotify",
    authorization_endpoint="https://accounts.spotify.com/authorize",
    token_endpoint="https://accounts.spotify.com/api/token",
    default_scopes=("user-read-private", "user-read-email"),
    pkce=True,
    client_auth_method="client_secret_basic",
    grant_types=CODE_PKCE_CC,
    api_base_url="https://api.spotify.com/v1/",
    test_path="me",
    docs_url="https://developer.spotify.com/documentation/web-api/concepts/authorization",
)

LINKEDIN = Preset(
    key="linkedin",
    name="LinkedIn",
    issuer="https://www.linkedin.com/oauth",
    authorization_endpoint="https://www.linkedin.com/oauth/v2/authorization",
    token_endpoint="https://www.linkedin.com/oauth/v2/accessToken",
    revocation_endpoint="https://www.linkedin.com/oauth/v2/revoke",
    userinfo_endpoint="https://api.linkedin.com/v2/userinfo",
    jwks_uri="https://www.linkedin.com/oauth/openid/jwks",
    default_scopes=("openid", "profile", "email"),
    client_auth_method="client_secret_post",
    grant_types=CODE_CC,
    api_base_url="https://api.linkedin.com/v2/",
    test_path="userinfo",
    docs_url="https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow",
)

XERO = Preset(
    key="xero",
    name="Xero",
    issuer="https://identity.xero.com",
    authorization_endpoint="https://login.xero.com/identity/connect/authorize",
    token_endpoint="https://identity.xero.com/connect/token",
    revocation_endpoint="https://identity.xero.com/connect/revocation",
    userinfo_endpoint="https://identity.xero.com/connect/userinfo",
    jwks_uri="https://identity.xero.com/.well-known/openid-configuration/jwks",
    default_scopes=("openid", "profile", "email", "offline_access"),
    pkce=True,
    client_auth_method="client_secret_basic",
    grant_types=CODE_PKCE_CC,
    api_base_url="https://api.xero.com/",
    test_path="connections",
    docs_url="https://developer.xero.com/documentation/guides/oauth2/auth-flow",
)

INTERCOM = Preset(
    key="intercom",
    name="Intercom",
    authorization_endpoint="https://app.intercom.com/oauth",
    token_endpoint="https://api.intercom.io/auth/eagle/token",
    client_auth_method="client_secret_post",
    grant_types=CODE,
    api_base_url="https://api.intercom.io/",
    test_path="me",
    docs_url="https://developers.intercom.com/docs/build-an-integration/learn-more/authentication/setting-up-oauth",
)

ZENDESK = Preset(
    key="zendesk",
    name="Zendesk",
    authorization_endpoint="https://{subdomain}.zendesk.com/oauth/authorizations/new",
    token_endpoint="https://{subdomain}.zendesk.com/oauth/tokens",
    default_scopes=("read",),
    client_auth_method="client_secret_post",
    grant_types=CODE_CC,
    api_base_url="https://{subdomain}.zendesk.com/api/v2/",
    test_path="users/me.json",
    docs_url="https://developer.zendesk.com/documentation/ticketing/working-with-oauth/using-oauth-authentication-with-your-application/",
    parameters=("subdomain",),
    parameter_labels={"subdomain": "Subdomain"},
    parameter_help={"subdomain": "Your Zendesk subdomain: acme for acme.zendesk.com."},
    validators={"subdomain": dns_label},
)

DEMO = Preset(
    key="demo",
    name="Demo authorization server",
    # django-oauth-toolkit mounted at /demo-oauth/ by the demo project, on a loopback origin
    # during development: the one preset whose {base} may be http (see local_origin).
    authorization_endpoint="{base}/demo-oauth/authorize/",
    token_endpoint="{base}/demo-oauth/token/",
    revocation_endpoint="{base}/demo-oauth/revoke_token/",
    userinfo_endpoint="{base}/demo-oauth/userinfo/",
    default_scopes=("read", "write"),
    pkce=True,
    client_auth_method="client_secret_basic",
    grant_types=CODE_PKCE_CC,
    api_base_url="{base}/demo-api/",
    test_path="me/",
    docs_url="https://django-oauth-toolkit.readthedocs.io/",
    parameters=("base",),
    parameter_labels={"base": "Base URL"},
    parameter_help={
        "base": "The demo authorization server's base URL: scheme, host and port, no path "
        "(e.g. http://localhost:8000, as ./scripts/demo prints it)."
    },
    validators={"base": local_origin},
)

BUILTIN_PRESETS: tuple[Preset, ...] = with_setup_notes(
    (
        GITHUB,
        GITLAB,
        GOOGLE,
        MICROSOFT,
        SLACK,
        SALESFORCE,
        DROPBOX,
        ZOOM,
        HUBSPOT,
        ATLASSIAN,
        NOTION,
        OKTA,
        AUTH0,
        BOX,
        DISCORD,
        SPOTIFY,
        LINKEDIN,
        XERO,
        INTERCOM,
        ZENDESK,
        DEMO,
    )
)
"""Every shipped preset with its setup notes (``setup_notes.py``); ``PRESETS`` is built from it."""
