"""Setup notes of the shipped presets: where to register, what to enter, what is different.

Data, like the presets; kept apart from ``providers.py`` so that module stays a list of
endpoints. :func:`with_setup_notes` puts each note into its preset's ``setup`` field, and
``scripts/providers_doc.py`` renders them into docs/providers.md (a test keeps it in step).
Consoles are named by product, not linked: their addresses move more often than endpoints.
Lifetimes and rotation are what the providers documented when this was written; check the
preset's ``docs_url`` when something disagrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from oauthconn.presets.record import Preset

SETUP_NOTES: dict[str, str] = {
    "github": "Register an OAuth app in GitHub > Settings > Developer settings > OAuth Apps > "
    "New OAuth App (for an organisation: the organisation's settings > Developer settings). "
    "Enter the redirect URI as the Authorization callback URL; an OAuth app has only one. "
    "OAuth app tokens do not expire and come without a refresh token; a GitHub App with "
    "expiring user tokens gets 8-hour access tokens and rotating refresh tokens instead.",
    "gitlab": "Register in GitLab > User settings (or a group's settings, or the Admin area) > "
    "Applications > Add new application, with Confidential checked and the scopes you need "
    "(read_user; openid for ID tokens). The preset is for gitlab.com; register a preset of "
    "your own for a self-managed instance. Access tokens last 2 hours; refresh tokens rotate.",
    "google": "Configure the OAuth consent screen first, then create the client in Google "
    "Cloud console > APIs & Services > Credentials > Create credentials > OAuth client ID "
    "(type Web application), with the redirect URI under Authorized redirect URIs; enable "
    "each API you will call under APIs & Services > Library. A refresh token comes only with "
    "access_type=offline and, for a second consent, prompt=consent (the preset sends both). "
    "While the consent screen is in Testing, refresh tokens expire after 7 days.",
    "microsoft": "Register in Microsoft Entra admin center > Identity > Applications > App "
    "registrations > New registration, platform Web, with the redirect URI; create the secret "
    "under Certificates & secrets (it expires, at most after 24 months: renew it in time) and "
    "add Microsoft Graph permissions under API permissions. The tenant parameter is the "
    "tenant ID, a verified domain, common or organizations. Refresh tokens need the "
    "offline_access scope and are replaced on use; client credentials ask for "
    "https://graph.microsoft.com/.default.",
    "slack": "Create the app at Slack API > Your Apps > Create New App, then under OAuth & "
    "Permissions add the redirect URL and the bot token scopes (user scopes go in a "
    "user_scope extra parameter). Scopes are joined with commas. Bot tokens do not expire "
    "unless token rotation is turned on (then 12 hours, with refresh tokens). Slack reports "
    'errors as HTTP 200 with "ok": false.',
    "salesforce": "Create a connected app in Salesforce Setup > App Manager > New Connected "
    "App (or an external client app), enable OAuth settings, enter the redirect URI as the "
    "Callback URL and select the api and refresh_token (offline access) scopes; the consumer "
    "key and secret are the client id and secret, usable after a few minutes. The domain "
    "parameter is the host to sign in at (your My Domain host, login.salesforce.com or "
    "test.salesforce.com); API calls go to the org's own host, which each token response names "
    "in instance_url and oauthconn keeps per grant. How long refresh tokens last is the "
    "connected app's refresh token policy.",
    "dropbox": "Create a scoped-access app in the Dropbox App Console, enter the redirect URI "
    "on its Settings tab and the scopes (account_info.read, ...) on its Permissions tab. "
    "Access tokens are short-lived (about 4 hours); a refresh token comes only with "
    "token_access_type=offline (the preset sends it) and does not expire.",
    "zoom": "Create a general app (user-managed OAuth) in Zoom App Marketplace > Develop > "
    "Build App; enter the redirect URI as the OAuth redirect URL and in the allow list, and "
    "add scopes on the Scopes page. Access tokens last 1 hour; each refresh returns a new "
    "refresh token and the old one stops working.",
    "hubspot": "Create an app in your HubSpot developer account (Apps > Create app); on its "
    "Auth tab enter the redirect URL and the scopes, which must match what the connection "
    "asks for. Access tokens last 30 minutes; refresh tokens do not expire until the app is "
    "uninstalled.",
    "atlassian": "Create an OAuth 2.0 (3LO) integration in the Atlassian developer console; "
    "enter the redirect URI as the Callback URL under Authorization and add the Jira or "
    "Confluence scopes under Permissions. Refresh tokens need offline_access and rotate. API "
    "calls go to api.atlassian.com/ex/jira/CLOUD-ID/..., the cloud id coming from "
    "oauth/token/accessible-resources.",
    "notion": "Create a public integration in Notion's integrations dashboard (Notion "
    "Developers > View my integrations > New integration, type Public) and enter the redirect "
    "URI there. Every API call needs a Notion-Version header. Notion's access tokens have not "
    "expired so far; keep the client secret safe, as it is all a refresh would need.",
    "okta": "Create an app integration in Okta Admin Console > Applications > Applications > "
    "Create App Integration (OIDC, Web Application), with the redirect URI as a Sign-in "
    "redirect URI and the Refresh Token grant checked. The domain parameter is your Okta "
    "domain; the preset uses the default custom authorization server. Refresh tokens need "
    "offline_access; rotation is the app's setting.",
    "auth0": "Create a Regular Web Application in Auth0 Dashboard > Applications > "
    "Applications and enter the redirect URI under Allowed Callback URLs. To call your own "
    "API, register it under Applications > APIs and send its identifier as the audience extra "
    "parameter; refresh tokens need offline_access and Allow Offline Access on that API. The "
    "domain parameter is the tenant's domain (or your custom domain).",
    "box": "Create a Custom App with User Authentication (OAuth 2.0) in the Box Developer "
    "Console; on its Configuration tab enter the redirect URI and the application scopes. "
    "Access tokens last 60 minutes; a refresh token can be used once (each refresh returns a "
    "new one) and expires after 60 days.",
    "discord": "Create an application in the Discord Developer Portal and add the redirect "
    "URI under OAuth2 > Redirects; the client id and secret are on the same page. Access "
    "tokens last about a week and come with a refresh token.",
    "spotify": "Create an app in the Spotify for Developers dashboard with the Web API "
    "selected, and add the redirect URI (Spotify takes http only for 127.0.0.1 and [::1], not "
    "localhost). In development mode only users you add to the app can authorize. Access "
    "tokens last 1 hour; a refresh may return a new refresh token.",
    "linkedin": "Create an app in the LinkedIn Developer Portal (it needs a LinkedIn Page), "
    "add the product Sign In with LinkedIn using OpenID Connect, and enter the redirect URI "
    "under Auth > Authorized redirect URLs. Access tokens last 60 days; refresh tokens are "
    "only for approved partners, so expect to reauthorize every 60 days.",
    "xero": "Create a Web app in the Xero Developer portal (My Apps > New app) with the "
    "redirect URI. Refresh tokens need offline_access and rotate on every use; access tokens "
    "last 30 minutes. API calls need a Xero-tenant-id header from the connections endpoint "
    "(the preset's test path).",
    "intercom": "Create an app in the Intercom Developer Hub, turn on Use OAuth on its "
    "Authentication page and enter the redirect URL there. Intercom's access tokens do not "
    "expire and come without a refresh token.",
    "zendesk": "Add an OAuth client in Zendesk Admin Center > Apps and integrations > APIs > "
    "Zendesk API > OAuth Clients, with the redirect URI; its unique identifier is the client "
    "id. The subdomain parameter is the part before .zendesk.com. Tokens do not expire unless "
    "the client asks for an expiry, in which case refresh tokens come with it.",
    "demo": "Nothing to register: ./scripts/demo registers the clients at the demo server and "
    "prints the client id and secret for the tour's wizard (the same on every run). The base "
    "parameter is the demo server's origin, http://localhost:8000 by default. Access tokens "
    "last 1 hour and refresh tokens rotate, as at most real providers.",
}


def with_setup_notes(presets: Iterable[Preset]) -> tuple[Preset, ...]:
    """The presets with their :data:`SETUP_NOTES` in ``setup``; KeyError for one without."""
    return tuple(dataclasses.replace(p, setup=SETUP_NOTES[p.key]) for p in presets)
