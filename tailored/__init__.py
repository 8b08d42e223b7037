"""Tailored's foundation: small pieces shared by every app of the suite (settings access, the
admin's charts and permission screen, HTTP edge helpers). It sits below ``consent`` in the
layers contract and imports none of the apps."""
