"""Users, roles and tokens: the roles (roles.py) and their permissions (permissions.py, group_permissions.py),
API tokens and who a request speaks for (authentication.py, principals.py), login throttling. Start with
roles.py."""
