"""CLEVR's ground: the curved backdrop of ``data/base_scene.blend``, as data.

A floor that curves up into a wall behind the objects (the floor-to-wall gradient is
CLEVR's look): a 48-point profile in the object's xz-plane, extruded along local -y,
smoothed by a Subdivision modifier of level 2, flat-shaded, with no material (rendered
with Cycles' default surface, a default Principled BSDF in 5.0). All values are read with
bpy from the file; the faces keep its winding (normals point down, away from the camera:
every engine shades both sides).
"""

from __future__ import annotations

from types import MappingProxyType

# (x, z) of the profile's vertices in the object's space, floor first, then up the wall.
PROFILE: tuple[tuple[float, float], ...] = (
    (-23.55569076538086, 0.0),
    (-21.644012451171875, 4.757469469041098e-06),
    (-19.842741012573242, 7.611951150465757e-05),
    (-18.14740753173828, 0.0003853550588246435),
    (-16.553646087646484, 0.001217912184074521),
    (-15.057147979736328, 0.0029734179843217134),
    (-13.65371322631836, 0.006165680941194296),
    (-12.339221000671387, 0.011422685347497463),
    (-11.109631538391113, 0.019486594945192337),
    (-9.960993766784668, 0.031213756650686264),
    (-8.889443397521973, 0.047574687749147415),
    (-7.891199111938477, 0.06965410709381104),
    (-6.962565898895264, 0.09865089505910873),
    (-6.099935531616211, 0.1358780860900879),
    (-5.2997846603393555, 0.1827629655599594),
    (-4.558674335479736, 0.2408468872308731),
    (-3.873250961303711, 0.3117855191230774),
    (-3.240248680114746, 0.3973485827445984),
    (-2.656484603881836, 0.4994201064109802),
    (-2.118863582611084, 0.6199980974197388),
    (-1.6243739128112793, 0.7611950039863586),
    (-1.170091152191162, 0.9252373576164246),
    (-0.753174901008606, 1.1144657135009766),
    (-0.37087157368659973, 1.3313348293304443),
    (-0.02051091194152832, 1.5784143209457397),
    (0.300488144159317, 1.858386516571045),
    (0.5946246981620789, 2.1740493774414062),
    (0.8643105626106262, 2.5283143520355225),
    (1.1118727922439575, 2.9242074489593506),
    (1.339552640914917, 3.364867925643921),
    (1.5495054721832275, 3.8535501956939697),
    (1.7438021898269653, 4.393622875213623),
    (1.9244271516799927, 4.988568305969238),
    (2.0932796001434326, 5.641982555389404),
    (2.25217342376709, 6.357577323913574),
    (2.402837038040161, 7.139176845550537),
    (2.5469131469726562, 7.990721702575684),
    (2.6859588623046875, 8.91626262664795),
    (2.821446180343628, 9.91996955871582),
    (2.954761505126953, 11.006123542785645),
    (3.087204933166504, 12.179120063781738),
    (3.2199926376342773, 13.443469047546387),
    (3.3542542457580566, 14.803797721862793),
    (3.491032838821411, 16.26483726501465),
    (3.63128924369812, 17.831451416015625),
    (3.775895118713379, 19.508596420288086),
    (3.9256391525268555, 21.30135726928711),
    (4.081223011016846, 23.214929580688477),
)
DEPTH = 56.484859466552734  # extrusion along local -y
LOCATION: tuple[float, float, float] = (-24.062761306762695, -17.99666976928711, 0.0)
ROTATION_Z = 2.697981595993042  # radians (154.583 degrees)
SUBSURF: MappingProxyType[str, object] = MappingProxyType(
    {"levels": 2, "render_levels": 2, "quality": 2, "uv_smooth": "PRESERVE_CORNERS",
     "boundary_smooth": "ALL", "use_limit_surface": True}
)  # fmt: skip
COLOR = 0.8  # the base colour of Cycles 5.0's default surface (see addon.frame)


def vertices() -> list[tuple[float, float, float]]:
    """The profile at y = 0, then again at y = -DEPTH (the mesh before subdivision)."""
    return [(x, y, z) for y in (0.0, -DEPTH) for x, z in PROFILE]


def faces() -> list[tuple[int, int, int, int]]:
    """One quad per profile segment, in the file's winding."""
    n = len(PROFILE)
    return [(i, i + 1, i + 1 + n, i + n) for i in range(n - 1)]
