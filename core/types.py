"""Small vocabularies shared by config, skills, backends and records."""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    """What a model can do; skills declare the ones they need."""

    text_generation = "text-generation"
    embedding = "embedding"
    vision = "vision"
    image_generation = "image-generation"


class Tier(StrEnum):
    device = "device"
    cloud = "cloud"


class Sensitivity(StrEnum):
    """How sensitive the data a skill handles is, from the user's point of view.

    ``private`` data never leaves the device, whatever the routing policy says.
    """

    public = "public"
    personal = "personal"
    private = "private"


class DataClass(StrEnum):
    """Kinds of user data that privacy policy names."""

    text = "text"
    documents = "documents"
    photos = "photos"
    contacts = "contacts"
    messages = "messages"
    health = "health"
    location = "location"
    calendar = "calendar"


class Priority(StrEnum):
    """Foreground calls (the app on screen) are served before background ones."""

    foreground = "foreground"
    background = "background"
