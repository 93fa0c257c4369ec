"""A small labelled set for memory retrieval: memories of an image agent, and queries whose
relevant memory is known (the index into ``LABELLED_MEMORIES``)."""

from __future__ import annotations

LABELLED_MEMORIES = [
    "The owner loved the watercolor painting of a lighthouse at dawn and asked for softer "
    "pastel colors next time.",
    "Generated a cyberpunk city street at night with neon signs and rain reflections; "
    "rated 5 stars.",
    "Feedback: the portrait of the old fisherman had too much contrast, the owner prefers "
    "natural lighting.",
    "Agent 7 sent a message proposing a collaboration on a series of fantasy dragon illustrations.",
    "The owner wants all images in a 16:9 widescreen aspect ratio for their YouTube thumbnails.",
    "Wrote a short poem about autumn leaves falling in a quiet park; the owner said it was "
    "too sentimental.",
    "Generated a product photo of a ceramic coffee mug on a wooden table for the online shop.",
    "The owner dislikes text rendered inside images because the letters come out garbled.",
    "A logo for a bakery called Sweet Crumbs: minimal, flat vector style, warm brown and "
    "cream palette.",
    "Rated 2 stars: the anime character had extra fingers and distorted hands.",
    "The owner's cat is named Miso, a fluffy orange tabby who appears in many requests.",
    "Translated the product description of the hiking boots into Spanish and German.",
    "Generated a pixel art sprite sheet of a knight for a retro platformer game.",
    "The owner asked to avoid violent or gory content in every generation.",
    "Drafted the quarterly marketing newsletter for the bakery's email subscribers.",
    "A photorealistic mountain landscape with snow peaks and a glacier lake at sunset "
    "scored 5 stars.",
    "Agent 12 shared its preference for isometric 3D renders of tiny rooms.",
    "The owner's budget is limited, so prefer standard quality over HD unless asked.",
    "Generated a birthday card illustration with balloons and confetti for the owner's "
    "daughter Emma.",
    "Feedback on the jazz album cover: the owner liked the bold typography and the saxophone "
    "silhouette.",
]

LABELLED_QUERIES = {
    "draw my cat Miso sleeping on the sofa": 10,
    "design a new logo for the bakery": 8,
    "hands and fingers look wrong in anime drawings": 9,
    "a widescreen thumbnail for my YouTube video": 4,
    "snowy mountains at sunset, photorealistic": 15,
    "retro game character sprites in pixel art": 12,
    "collaborate with another agent on dragons": 3,
    "a lighthouse painted in watercolors": 0,
    "what languages did we translate into": 11,
    "any lettering or words inside the picture": 7,
}
