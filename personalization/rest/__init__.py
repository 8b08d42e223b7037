"""The personalization app's REST API (Django REST framework): what headless front ends need
to show a visitor the same variants a rendered page would."""
