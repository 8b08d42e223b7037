"""Images of the demo's, drawn here: the demo ships no media files."""

import io

from django.core.files.images import ImageFile
from PIL import Image as PILImage
from PIL import ImageDraw
from wagtail.images import get_image_model


def banner_image(title: str, colour: str = "#0f3d3e", text: str = ""):
    """The Wagtail image titled ``title``, made (a 720 by 240 banner of ``colour`` reading
    ``text``) if there is none yet."""
    Image = get_image_model()
    found = Image.objects.filter(title=title).first()
    if found is not None:
        return found
    picture = PILImage.new("RGB", (720, 240), colour)
    ImageDraw.Draw(picture).text((32, 100), text or title, fill="white", font_size=40)
    data = io.BytesIO()
    picture.save(data, "PNG")
    name = title.lower().replace(" ", "-") + ".png"
    return Image.objects.create(title=title, file=ImageFile(data, name=name))
