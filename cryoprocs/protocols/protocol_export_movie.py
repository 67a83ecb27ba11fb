"""ExportMovie: tomograms, tilt series and volumes to shareable movies (mrc2movie's frames).

The frame maths is in :mod:`cryoprocs.kernels.movie`, the streaming and the encoders in
:mod:`cryoprocs.pipelines.movie` (see docs/export-movie.md). The movies are files
under the run's ``extra/`` folder, listed in the summary; the protocol defines no output
object (pyworkflow finishes a run without outputs normally; scipion-em-tomo's
``ProtExportCoordinates3D`` is the model). A preview montage of the central frames,
``extra/preview.png``, is shown by :class:`cryoprocs.viewers.viewer_movie.CryoprocsMovieViewer`.
"""
import contextlib
import json
import logging
import os

import pyworkflow.protocol.params as params
from pwem.objects import EMSet
from pyworkflow import BETA
from pyworkflow.protocol.constants import LEVEL_ADVANCED
from tomo.objects import SetOfTiltSeries, SetOfTomograms

from .. import constants
from ..convert.mrc import atomic_output
from ..convert.paths import safe_name
from ..kernels import movie
from ..pipelines import movie as movie_pipeline
from .protocol_base import COMMAND_BASE_MB, ProtCryoprocsBase, read_json
from .texts import link

logger = logging.getLogger(__name__)


def _write_atomic(path, data):
    """Write bytes or a JSON-able object to ``path`` under a temporary name, then rename."""
    with atomic_output(path) as tmp:
        if isinstance(data, (bytes, bytearray)):
            with open(tmp, 'wb') as fh:
                fh.write(data)
        else:
            with open(tmp, 'w') as fh:
                json.dump(data, fh, indent=1)


def _png_bytes(img):
    import cv2
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise movie.MovieError('could not encode a PNG preview')
    return buf.tobytes()


class ProtCryoprocsExportMovie(ProtCryoprocsBase):
    """Export tomograms, tilt series or volumes as movies to share and present: MP4 (H.264),
    AVI (MJPG), GIF or PNG frames, one per item, with mrc2movie's frames (global min/max to
    8 bit, CLAHE, a forward-backward loop) plus slicing axis, slab averaging, binning, a
    percentile contrast window, inversion, slice-number or tilt-angle labels and a scale bar,
    mrc2movie 0.2.0's pause and cycles, and optionally particles drawn in: sphere
    cross-sections on tomogram slices, or every particle projected into every tilt image
    through the alignment, as RELION 5 extraction does (a coordinate checker). The movies are
    files in the run's extra folder (listed in the summary); a preview montage of their
    central frames opens with Analyze Results. One step per item runs `cryoprocs movie` (one
    cluster job per item with "Use queue for jobs"); peak memory per movie about 40 input
    frames as float32 + 250 MB."""
    _label = 'export movie'
    _devStatus = BETA

    # ================================================================= form
    def _defineParams(self, form):
        form.addSection(label='Input')
        form.addParam('inputData', params.PointerParam,
                      pointerClass='SetOfTomograms, SetOfTiltSeries, SetOfVolumes, Volume',
                      important=True, label='Tomograms, tilt series or volumes',
                      help='One movie per tomogram, tilt series or volume, named by its tsId '
                           '(or by its id when it has none). Tilt series are shown image by '
                           'image, as stored (no alignment is applied); volumes slice by '
                           'slice along the chosen axis.')
        form.addParam('tiltOrder', params.EnumParam, choices=constants.MOVIE_ORDER_CHOICES,
                      default=constants.MOVIE_ORDER_ANGLE, display=params.EnumParam.DISPLAY_HLIST,
                      label='Tilt series frame order',
                      help='Tilt series only: show the images from the lowest to the highest '
                           'tilt angle, or in acquisition order (e.g. dose-symmetric). '
                           'Excluded (disabled) tilt images are left out.')

        form.addSection(label='Movie')
        form.addParam('outputFormat', params.EnumParam, choices=constants.MOVIE_FORMAT_CHOICES,
                      default=constants.MOVIE_FORMAT_MP4, label='Format',
                      help='*MP4 (H.264)*: plays everywhere (browsers, slides), small files '
                           '(x264 veryfast, CRF 23, yuv420p, fast start). *AVI (MJPG)*: '
                           'mrc2movie\'s output (OpenCV writer), large files. *GIF*: loops '
                           'in any viewer but is very large unless binned. *PNG frames*: one '
                           '8-bit PNG per frame (forward order) in <name>_frames/.')
        form.addParam('fps', params.FloatParam, default=30.0, label='Frames per second',
                      help='Playback rate (mrc2movie: 30). GIF stores delays in 1/100 s, so '
                           'its rate is rounded.')
        form.addParam('playback', params.EnumParam, choices=constants.MOVIE_PLAYBACK_CHOICES,
                      default=constants.MOVIE_PLAYBACK_FORWARD_BACKWARD,
                      display=params.EnumParam.DISPLAY_HLIST, label='Playback',
                      help='*forward-backward* (mrc2movie\'s default; mrc2movie 0.2.0 calls '
                           'it pingpong): the frames, then the same frames backwards without '
                           'repeating the first and last one, 2n-2 frames that loop '
                           'seamlessly. *forward*: n frames.')
        line = form.addLine('Pause and cycles', expertLevel=LEVEL_ADVANCED,
                            help='mrc2movie 0.2.0 --pause and --cycles: hold the last frame '
                                 '(and, forward-backward, the first one) this many more '
                                 'frames, and repeat the whole playback.')
        line.addParam('pause', params.IntParam, default=0, validators=[params.GE(0)],
                      label='pause (frames)', help='Extra frames at each end (0 = none).')
        line.addParam('cycles', params.IntParam, default=1, validators=[params.GE(1)],
                      label='cycles', help='Number of playbacks (1 = once).')
        form.addParam('sliceSelection', params.EnumParam, choices=constants.MOVIE_SLICES_CHOICES,
                      default=constants.MOVIE_SLICES_ALL, label='Slices',
                      help='Which slices (tilt images, in frame order) become frames. *keep a '
                           'range*: slices START to END-1, 0-based, what mrc2movie\'s '
                           '--discard_range START END does (its README says "discard"; its '
                           'code keeps them). *discard % at each end*: drop these percentages '
                           'of the slices at the start and at the end (mrc2movie\'s '
                           '--discard_percentage, given there as fractions). The contrast '
                           'window is computed over the kept slices only.')
        line = form.addLine('Keep slices [START, END)',
                            condition='sliceSelection == %d' % constants.MOVIE_SLICES_RANGE,
                            help='0-based, END excluded; END = -1 keeps through the last '
                                 'slice.')
        line.addParam('rangeStart', params.IntParam, default=0, label='START',
                      help='First kept slice (0-based).')
        line.addParam('rangeEnd', params.IntParam, default=-1, label='END',
                      help='One past the last kept slice (0-based, excluded); -1 = the end.')
        line = form.addLine('Discard (%)',
                            condition='sliceSelection == %d' % constants.MOVIE_SLICES_DISCARD,
                            help='Percentages of the slices dropped at the start and at the '
                                 'end: keeps [int(n a), int(n (1 - b))) as mrc2movie.')
        line.addParam('discardStart', params.FloatParam, default=10.0, label='start',
                      help='Percentage of the slices dropped at the start (0 <= a < 100).')
        line.addParam('discardEnd', params.FloatParam, default=10.0, label='end',
                      help='Percentage of the slices dropped at the end (0 <= b < 100).')
        form.addParam('axis', params.EnumParam, choices=constants.MOVIE_AXIS_CHOICES, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label='Slicing axis',
                      help='Volumes: frames are Z slices (XY planes, mrc2movie), Y slices '
                           '(XZ planes) or X slices (YZ planes); Z runs down the frame for Y '
                           'and X. Tilt series: Z only.')
        form.addParam('slab', params.IntParam, default=1, label='Slab thickness (slices)',
                      help='Average this many neighbouring slices into each frame (centred; '
                           'fewer at the faces). 5-10 raises the contrast of noisy tomograms; '
                           '1 = single slices (mrc2movie). Volumes only.')
        form.addParam('binning', params.IntParam, default=1, label='Binning',
                      help='Average N x N pixel blocks. Binning by 2 makes H.264 encoding '
                           '3-6x faster and files 5-8x smaller above 1024 px.')
        form.addParam('upscale', params.IntParam, default=1, validators=[params.GE(1)],
                      expertLevel=LEVEL_ADVANCED, label='Enlarge (x)',
                      help='Enlarge the frames N times (bicubic, after binning): small binned '
                           'tomograms become watchable and particles drawn on them stay '
                           'distinct. 1 = no.')
        form.addParam('maxWidth', params.IntParam, default=0, label='Maximum width (px)',
                      help='Shrink wider frames (after binning) to this width, keeping the '
                           'aspect ratio (area averaging). 0 = no limit.')

        form.addSection(label='Contrast and overlays')
        form.addParam('contrastWindow', params.EnumParam, choices=constants.MOVIE_WINDOW_CHOICES,
                      default=constants.MOVIE_WINDOW_MINMAX, label='Contrast window',
                      help='*global min/max*: the minimum and maximum of all kept slices map '
                           'to 0 and 255 (mrc2movie; gold beads or hot pixels flatten the '
                           'rest). *percentiles*: the low/high percentiles below map to 0 and '
                           '255 and the tails are clipped (robust to gold).')
        line = form.addLine('Percentiles (%)',
                            condition='contrastWindow == %d' % constants.MOVIE_WINDOW_PERCENTILE,
                            help='Low and high percentiles of the kept frames, estimated from '
                                 'a regular sample of at most 4 million pixels.')
        line.addParam('lowPercentile', params.FloatParam, default=0.1, label='low',
                      help='Percentile mapped to black (0-100).')
        line.addParam('highPercentile', params.FloatParam, default=99.9, label='high',
                      help='Percentile mapped to white (0-100), above the low one.')
        form.addParam('applyClahe', params.BooleanParam, default=True,
                      label='Local contrast (CLAHE)?',
                      help='Contrast-limited adaptive histogram equalisation of each 8-bit '
                           'frame (OpenCV), as mrc2movie.')
        line = form.addLine('CLAHE', condition='applyClahe',
                            help='Clip limit and number of tiles per side (mrc2movie: 2.0, 8).')
        line.addParam('clipLimit', params.FloatParam, default=2.0, label='clip limit',
                      help='Contrast limit of the equalisation (> 0); higher = stronger.')
        line.addParam('tileGridSize', params.IntParam, default=8, label='tile grid',
                      help='The frame is cut into an N x N grid of tiles (not tiles of N px).')
        form.addParam('invertContrast', params.BooleanParam, default=False,
                      label='Invert contrast?',
                      help='White becomes black (applied to the final 8-bit frames).')
        form.addParam('labelFrames', params.BooleanParam, default=False,
                      label='Label frames?',
                      help='Write the slice number (volumes, e.g. "Z 51/101") or the tilt '
                           'angle (tilt series, e.g. "tilt -60.0 deg") in the top-left corner.')
        form.addParam('scaleBar', params.BooleanParam, default=False, label='Scale bar?',
                      help='Draw a bar of a round length in nm (about a fifth of the width) '
                           'in the bottom-left corner, from the sampling rate.')
        mp4 = 'outputFormat == %d' % constants.MOVIE_FORMAT_MP4
        form.addParam('crf', params.IntParam, default=23, condition=mp4,
                      expertLevel=LEVEL_ADVANCED,
                      label='H.264 quality (CRF)',
                      help='x264 constant rate factor, 0-51: lower = better and larger; '
                           '18 is visually lossless, 23 the default, 28 small.')
        form.addParam('preset', params.EnumParam, choices=constants.MOVIE_PRESET_CHOICES,
                      default=constants.MOVIE_PRESET_DEFAULT, condition=mp4,
                      expertLevel=LEVEL_ADVANCED,
                      label='H.264 preset',
                      help='x264 speed/size trade-off; veryfast is the best size per second '
                           'of encoding on tomograms (slower presets are not smaller there).')
        self._defineNonFiniteParam(form)
        self._defineParticleParams(form)
        form.addParallelSection(threads=2, mpi=0)

    def _defineParticleParams(self, form):
        form.addSection(label='Particles')
        form.addParam('inputCoordinates', params.PointerParam, allowsNull=True,
                      pointerClass='SetOfCoordinates3D', label='Coordinates to draw (optional)',
                      help='Optional. Particles matched to the tomograms or tilt series by '
                           'tsId. Tomograms: each particle is a circle on the slices that '
                           'cut it (the cross-section of a sphere of the radius below). Tilt '
                           'series (aligned): each particle is projected into every tilt '
                           'image with the projection matrices of RELION 5 extraction, '
                           'shown on the raw images; frames where its box leaves the image '
                           'or the dose exceeds the maximum are drawn in red.')
        cond = 'inputCoordinates'
        form.addParam('particleRadius', params.FloatParam, default=-1, condition=cond,
                      label='Particle radius (Å)',
                      help='Radius R of the sphere drawn for each particle, in Å. '
                           '-1 = half the box size of the coordinates.')
        form.addParam('overlayStyle', params.EnumParam, choices=constants.MOVIE_OVERLAY_CHOICES,
                      default=0, condition=cond, label='Style',
                      help='*circles*: the outline of the sphere\'s cross-section, radius '
                           'sqrt(R^2 - dz^2) on the slices with |dz| < R, so the particle '
                           'stays visible inside. *filled discs*: the same, filled at 40 % '
                           'opacity. *mrc2movie*: mrc2movie 0.2.0\'s opaque red discs of '
                           'radius R (1 - |dz|/R).')
        form.addParam('colourBy', params.EnumParam, choices=constants.MOVIE_COLOUR_BY_CHOICES,
                      default=0, condition=cond, label='Colour by',
                      help='One colour, or the coordinates\' score (a colour bar) or class '
                           '(group id; distinct colours for up to 10 classes).')
        form.addParam('particleColour', params.EnumParam, choices=constants.MOVIE_COLOUR_CHOICES,
                      default=0, condition='%s and colourBy == 0' % cond, label='Colour',
                      help='Colour of the circles (mrc2movie style: red unless changed).')
        form.addParam('particleIds', params.BooleanParam, default=False, condition=cond,
                      label='Write particle ids?',
                      help='The coordinate id next to each circle.')
        form.addParam('overlayMaxDose', params.FloatParam, default=-1, condition=cond,
                      label='Maximum dose (e/Å²)',
                      help='Tilt series: frames whose pre-exposure exceeds this dose are '
                           'flagged (red), as extraction leaves them out (--max_dose). -1 = '
                           'no limit.')

    # ================================================================= helpers
    def _isTiltSeries(self):
        return isinstance(self.inputData.get(), SetOfTiltSeries)

    def _kindName(self):
        inp = self.inputData.get()
        if isinstance(inp, SetOfTiltSeries):
            return 'tiltseries'
        if isinstance(inp, SetOfTomograms) or type(inp).__name__ == 'Tomogram':
            return 'tomogram'
        return 'volume'

    def _collectItems(self):
        """Plain-data description of every enabled input item, in id order (read once from
        the sqlite sets in the main thread; the item steps only read files)."""
        inp = self.inputData.get()
        kind = self._kindName()
        items = []
        if isinstance(inp, SetOfTiltSeries):
            acq = self.tiltOrder.get() == constants.MOVIE_ORDER_ACQUISITION
            for ts in inp.iterItems(orderBy='id'):
                if not ts.isEnabled():
                    continue
                tis = []
                for ti in ts.iterItems(orderBy='id'):
                    if not ti.isEnabled():
                        continue
                    index, fn = ti.getLocation()
                    tis.append((ti.getTiltAngle(), ti.getAcquisitionOrder(), ti.getObjId(),
                                self._projectPath(fn), int(index) - 1 if index else None))
                tis.sort(key=(lambda t: (t[1], t[2])) if acq else (lambda t: (t[0], t[2])))
                items.append({'kind': kind, 'id': ts.getObjId(), 'tsId': ts.getTsId(),
                              'n': len(tis), 'entries': [(t[3], t[4]) for t in tis],
                              'angles': [t[0] for t in tis],
                              'sampling': ts.getSamplingRate() or inp.getSamplingRate()})
        else:
            vols = inp.iterItems(orderBy='id') if isinstance(inp, EMSet) else [inp]
            for v in vols:
                if not v.isEnabled():
                    continue
                index, fn = v.getLocation()
                dims = v.getDim() or (0, 0, 0)
                tsId = v.getTsId() if hasattr(v, 'getTsId') else None
                items.append({'kind': kind, 'id': v.getObjId(), 'tsId': tsId,
                              'path': self._projectPath(fn),
                              'index': int(index) if index else 0,
                              'dims': [int(d or 0) for d in dims],
                              'sampling': v.getSamplingRate()})
        used = set()
        for it in items:
            name = safe_name(it['tsId']) if it['tsId'] else ''
            if not name:
                name = '%s_%03d' % (it['kind'], it['id'] or 0)
            if name in used:
                name = '%s_%d' % (name, it['id'])
            used.add(name)
            it['name'] = name
        return items

    def _items(self):
        if getattr(self, '_itemsCache', None) is None:
            self._itemsCache = self._collectItems()
        return self._itemsCache

    def _nFrames(self, item):
        """Slices (frames before selection) of an item along the chosen axis."""
        if item['kind'] == 'tiltseries':
            return item['n']
        x, y, z = item['dims']
        return {0: z, 1: y, 2: x}[self.axis.get()]

    def _keepRange(self, n):
        sel = self.sliceSelection.get()
        if sel == constants.MOVIE_SLICES_RANGE:
            end = self.rangeEnd.get()
            return (self.rangeStart.get(), n if end == -1 else end), None
        if sel == constants.MOVIE_SLICES_DISCARD:
            return None, (self.discardStart.get() / 100.0, self.discardEnd.get() / 100.0)
        return None, None

    def _settings(self, item=None):
        keep, frac = self._keepRange(self._nFrames(item) if item else 0)
        return movie_pipeline.MovieSettings(
            format=constants.MOVIE_FORMAT_KEYS[self.outputFormat.get()], fps=self.fps.get(),
            playback=constants.MOVIE_PLAYBACK_CHOICES[self.playback.get()], keep_range=keep,
            discard_fraction=frac, axis=movie.AXES[self.axis.get()], slab=self.slab.get(),
            binning=self.binning.get(), max_width=self.maxWidth.get(),
            window=movie.WINDOWS[self.contrastWindow.get()],
            percentiles=(self.lowPercentile.get(), self.highPercentile.get()),
            clahe=self.applyClahe.get(), clip_limit=self.clipLimit.get(),
            tile_grid_size=self.tileGridSize.get(), invert=self.invertContrast.get(),
            label=self.labelFrames.get(), scale_bar=self.scaleBar.get(), crf=self.crf.get(),
            preset=constants.MOVIE_PRESET_CHOICES[self.preset.get()], upscale=self.upscale.get(),
            pause=self.pause.get(), cycles=self.cycles.get())

    # ---------------------------------------------------------------- particles
    def _hasCoordinates(self):
        return self.inputCoordinates.get() is not None

    def _overlaySettings(self, item, particles):
        """Form values -> OverlaySettings in px of the item (tomogram voxels, tilt-image px)."""
        cset = self.inputCoordinates.get()
        sr = item['sampling']
        box = (cset.getBoxSize() or 0) * cset.getSamplingRate() / sr
        radius = self.particleRadius.get()
        style = constants.MOVIE_OVERLAY_KEYS[self.overlayStyle.get()]
        colour = constants.MOVIE_COLOUR_CHOICES[self.particleColour.get()]
        return movie_pipeline.OverlaySettings(
            particles=particles, radius=radius / sr if radius > 0 else 0.0, radius_unit='px',
            box_size=box, style=style,
            colour=None if style == 'mrc2movie' and self.particleColour.get() == 0 else colour,
            color_by=constants.MOVIE_COLOUR_BY_KEYS[self.colourBy.get()],
            ids=self.particleIds.get(), max_dose=self.overlayMaxDose.get())

    def _particlesIndex(self):
        return self._getExtraPath(constants.MOVIE_PARTICLES_DIR, 'particles.json')

    def _prepareParticles(self):
        """Write the particle files of every item once per run, under the protocol lock and
        before the first command needs them: a CSV of tomogram voxels per tomogram, a RELION 5
        project (tilt series without CTF, particles.star) per tilt series. Their index
        ``extra/particles/particles.json`` (``{name: {"files": [...], "count": n}}``) is
        written last, so a resumed run reuses complete files only. Returns the index."""
        with self._lock:
            index = read_json(self._particlesIndex())
            if index is not None:
                return index
            from ..convert import movie_scipion
            folder = self._getExtraPath(constants.MOVIE_PARTICLES_DIR)
            os.makedirs(folder, exist_ok=True)
            cset = self.inputCoordinates.get()
            items = [it for it in self._items() if it['tsId']]
            wanted = {it['tsId'] for it in items}
            coords = {t: [] for t in wanted}
            for c in cset.iterItems(orderBy='id'):          # one pass over the set
                if c.isEnabled() and c.getTomoId() in wanted:
                    coords[c.getTomoId()].append(c.clone())
            tiltSeries = tomos = {}
            if any(it['kind'] == 'tiltseries' for it in items):
                tiltSeries = self._byTsId(self.inputData.get())
                tomos = self._byTsId(cset.getPrecedents())
            index = {}
            for it in items:
                cs = coords[it['tsId']]
                if it['kind'] != 'tiltseries':
                    path = os.path.join(folder, it['name'] + '.csv')
                    movie_scipion.write_tomogram_particles(path, cs, cset.getSamplingRate(),
                                                           it['sampling'], it['dims'])
                    files = [os.path.abspath(path)]
                else:
                    star, parts = movie_scipion.write_tilt_series_particles(
                        os.path.join(folder, it['name']), os.path.abspath(self._projectPath('.')),
                        tiltSeries[it['tsId']], cs, cset, tomos.get(it['tsId']))
                    files = [os.path.abspath(star)] + ([os.path.abspath(parts)] if cs else [])
                index[it['name']] = {'files': files, 'count': len(cs)}
            _write_atomic(self._particlesIndex(), index)
            return index

    def _particleArgs(self, item):
        """``(input args, particle options)`` of an item with coordinates: a tomogram is
        the INPUT and its CSV the --particles; a tilt series is the RELION 5 project written
        for it (--tomograms, no INPUT), its frames in the form's order."""
        from ..commands.movie import args_from_overlay
        entry = self._prepareParticles().get(item['name'])
        if entry is None:
            return None
        files = entry['files']
        if item['kind'] != 'tiltseries':
            return [item['path']], args_from_overlay(self._overlaySettings(item, files[0]))
        order = 'dose' if self.tiltOrder.get() == constants.MOVIE_ORDER_ACQUISITION else 'angle'
        args = ['--tomograms', files[0], '--project-dir',
                os.path.abspath(self._projectPath('.')), '--tomo-name', item['tsId'],
                '--order', order]
        if len(files) > 1:
            args += args_from_overlay(self._overlaySettings(item, files[1]))
        return [], args

    def _moviePath(self, name):
        fmt = constants.MOVIE_FORMAT_KEYS[self.outputFormat.get()]
        return movie_pipeline.movie_path(self._getExtraPath(), name, fmt)

    def _infoPath(self, name, ext='.json'):
        return self._getExtraPath(constants.MOVIE_INFO_DIR, name + ext)

    def _framesPath(self, name):
        """The frame list of a tilt series (the command's input)."""
        return self._getExtraPath('movie_frames', name + '.json')

    # ================================================================= steps
    def _insertAllSteps(self):
        self._itemsCache = self._collectItems()
        # One step per item and no final step: each item step refreshes the preview and the
        # index, so the last one to finish leaves them complete (a final step would cost a
        # 3 s poll of pyworkflow's parallel executor).
        names = [(it['name'], len(self._itemsCache)) for it in self._itemsCache]
        self._insertItemSteps(self.exportMovieStep, names)

    def _done(self, name):
        """None when the movie of ``name`` is complete (its description is written last)."""
        info = read_json(self._infoPath(name))
        if info is None:
            return 'no readable movie description %s' % self._infoPath(name)
        if os.path.basename(info.get('path', '')) != os.path.basename(self._moviePath(name)):
            return 'the description %s is not that of %s' % (self._infoPath(name),
                                                             self._moviePath(name))
        return None

    def _commandArgs(self, item, threads):
        """``cryoprocs movie INPUT OUTPUT_DIR ...`` options of one item (form -> command)."""
        from ..commands.movie import args_from_settings
        name = item['name']
        if item['kind'] != 'tiltseries' and item['index'] > 1:
            raise movie.MovieError('%s is volume %d of a stack of volumes, which is not '
                                   'supported' % (item['path'], item['index']))
        particles = self._particleArgs(item) if self._hasCoordinates() and item['tsId'] \
            else None
        overlay = []
        if particles is not None:
            args, overlay = particles
        elif item['kind'] == 'tiltseries':
            frames = os.path.abspath(self._framesPath(name))
            _write_atomic(frames, {'entries': item['entries'], 'angles': item['angles']})
            args = [frames, '--frame-list']
        else:
            args = [item['path']]
        args += [os.path.abspath(self._getExtraPath()), '--name', name,
                 '--info', os.path.abspath(self._infoPath(name)),
                 '--central-png', os.path.abspath(self._infoPath(name, '_central.png')),
                 '--threads', str(threads), '--overwrite']
        if item['sampling']:
            args += ['--pixel_size', repr(float(item['sampling']))]
        return args + args_from_settings(self._settings(item), self._nonFinite()) + overlay

    def exportMovieStep(self, name, nItems):
        """One item: ``cryoprocs movie`` as this step's job, its results checked, then the
        preview montage and index refreshed (a movie finished before a restart is kept)."""
        item = next(it for it in self._items() if it['name'] == name)
        out, infoFile = self._moviePath(name), self._infoPath(name)
        if os.path.exists(out) and self._done(name) is None:
            logger.info('%s: %s exists (finished before a restart), skipped', name, out)
            self._updatePreview()
            return
        os.makedirs(os.path.dirname(infoFile), exist_ok=True)
        threads = self._kernelThreads(nItems)
        self._runCryoprocs('movie', self._commandArgs(item, threads), threads)
        self._requireResults('%s (id %s)' % (name, item['id']), [out, infoFile],
                             lambda: self._done(name))
        logger.info('%s (id %s): %s', name, item['id'],
                    movie_pipeline.MovieInfo(read_json(infoFile)).summary_line())
        self._updatePreview()

    def _updatePreview(self):
        """Montage of the central frames of the finished movies and their index (JSON)."""
        with self._lock:
            self._writePreview(self._readInfos(fromItems=True))

    def _writePreview(self, infos):
        import cv2

        tiles = [cv2.imread(self._infoPath(i['name'], '_central.png'), cv2.IMREAD_UNCHANGED)
                 for i in infos]
        mont = movie.montage(tiles, [i['name'] for i in infos])
        _write_atomic(self._getExtraPath(constants.MOVIE_PREVIEW_FILE), _png_bytes(mont))
        _write_atomic(self._getExtraPath(constants.MOVIE_INDEX_FILE), infos)

    # ================================================================= results
    def _readInfos(self, fromItems=False):
        """Movie descriptions (dicts, see MovieInfo, with the item ``id``) of the finished
        items, in item order: from the index written after each movie, or (``fromItems``)
        from each item's description."""
        if not fromItems:
            infos = read_json(self._getExtraPath(constants.MOVIE_INDEX_FILE))
            if infos is not None:
                return infos
        infos = []
        for it in self._items():
            info = read_json(self._infoPath(it['name']))
            if info is not None and os.path.exists(self._moviePath(it['name'])):
                info['id'] = it['id']
                infos.append(info)
        return infos

    def getMovieFiles(self):
        """Paths of the written movies (relative to the project, as Scipion stores paths)."""
        return [self._getExtraPath(os.path.basename(i['path'])) for i in self._readInfos()]

    def getPreviewFile(self):
        path = self._getExtraPath(constants.MOVIE_PREVIEW_FILE)
        return path if os.path.exists(path) else None

    # ================================================================= memory
    _memoryHelp = ('Peak memory of one movie: about 40 frames of the input as float32 (the '
                   'input is memory-mapped and its pages released as frames are rendered) '
                   '+ 250 MB (Python and the encoder); about 0.4 GB for 1024 x 1024 frames.')

    def _memoryItems(self):
        items = []
        for it in self._items():
            if it['kind'] == 'tiltseries':
                with contextlib.suppress(Exception):
                    from ..convert.mrc import mrc_info
                    shape = mrc_info(it['entries'][0][0]).shape
                    frame = shape[-1] * shape[-2]
                    items.append(('%s (%d images of %d x %d)' % (it['name'], it['n'],
                                                                 shape[-1], shape[-2]),
                                  COMMAND_BASE_MB + 100 + 40 * frame * 4 / 2.0 ** 20))
                continue
            x, y, z = it['dims']
            frame = {0: x * y, 1: x * z, 2: y * z}[self.axis.get()] * max(1, self.slab.get())
            items.append(('%s (%d x %d x %d)' % (it['name'], x, y, z),
                          COMMAND_BASE_MB + 100 + 40 * frame * 4 / 2.0 ** 20))
        return items

    # ================================================================= info
    def _validate(self):
        errors = []
        inp = self.inputData.get()
        if inp is None:
            return ['Choose the tomograms, tilt series or volumes.']
        if isinstance(inp, EMSet) and inp.getSize() == 0:
            return ['The input set is empty.']
        sel = self.sliceSelection.get()
        a, b = self.discardStart.get(), self.discardEnd.get()
        badDiscard = sel == constants.MOVIE_SLICES_DISCARD and not (0 <= a < 100 and 0 <= b < 100)
        if badDiscard:
            errors.append('Discard percentages must be in [0, 100), got %g and %g.' % (a, b))
        try:
            self._settings()
        except movie.MovieError as exc:
            # with bad percentages the settings report them as fractions: one message per
            # bad value, the one above in the form's unit (the settings' other checks show
            # once the percentages are fixed)
            if not badDiscard:
                errors.append(str(exc))
        ts = self._isTiltSeries()
        if ts and self.axis.get() != 0:
            errors.append('Tilt series are shown image by image: the slicing axis must be Z '
                          '(got %s).' % constants.MOVIE_AXIS_CHOICES[self.axis.get()])
        if ts and self.slab.get() > 1:
            errors.append('Slab averaging (%d slices) mixes neighbouring tilt images; it is '
                          'for volumes only.' % self.slab.get())
        errors += self._validateCoordinates(inp, ts)
        if self.scaleBar.get() and not (inp.getSamplingRate() or 0) > 0:
            errors.append('A scale bar needs the sampling rate, and the input has none (%s).'
                          % inp.getSamplingRate())
        if errors:
            return errors
        for it in self._collectItems():
            n = self._nFrames(it)
            keep, frac = self._keepRange(n)
            try:
                movie.kept_range(n, keep, frac)
                x, y, z = it['dims'] if it['kind'] != 'tiltseries' else (1, 1, 1)
                frame = {0: (y, x), 1: (z, x), 2: (z, y)}[self.axis.get()]
                if it['kind'] != 'tiltseries':
                    movie.output_geometry(frame, self.binning.get(), self.maxWidth.get())
            except movie.MovieError as exc:
                errors.append('%s (id %s): %s' % (it['name'], it['id'], exc))
        return errors

    def _validateCoordinates(self, inp, ts):
        cset = self.inputCoordinates.get()
        if cset is None:
            return []
        errors = []
        if ts and not inp.hasAlignment():
            errors.append('Particles are projected into the tilt images through the tilt '
                          'series alignment, and these tilt series have none.')
        if not (cset.getSamplingRate() or 0) > 0 or not (inp.getSamplingRate() or 0) > 0:
            errors.append('Drawing particles needs the sampling rates of the coordinates '
                          '(%s) and of the input (%s).' % (cset.getSamplingRate(),
                                                           inp.getSamplingRate()))
        if self.particleRadius.get() <= 0 and not (cset.getBoxSize() or 0) > 0:
            errors.append('The coordinates have no box size: give the particle radius (Å).')
        return errors

    def _warnings(self):
        warnings = []
        cset = self.inputCoordinates.get()
        if cset is not None and self.inputData.get() is not None:
            ids = {str(t) for t in cset.getUniqueValues('_tomoId')}
            items = {it['tsId'] for it in self._collectItems() if it['tsId']}
            if not ids & items:
                warnings.append('No coordinate belongs to the input items (coordinates of %s; '
                                'items %s): the movies will have no particle.'
                                % (', '.join(sorted(ids)[:5]), ', '.join(sorted(items)[:5])))
        inp = self.inputData.get()
        if inp is None:
            return warnings
        if self._isTiltSeries() and inp.hasAlignment():
            warnings.append('The tilt series have an alignment; the movie shows the tilt '
                            'images as stored, without applying it.')
        dims = inp.getDimensions() if isinstance(inp, EMSet) else inp.getDim()
        if dims and dims[0]:
            width = dims[0] // max(1, self.binning.get())
            if self.maxWidth.get():
                width = min(width, self.maxWidth.get())
            if self.outputFormat.get() == constants.MOVIE_FORMAT_GIF and width > 512:
                warnings.append('A GIF of %d px wide frames is very large (hundreds of MB for '
                                'a tomogram); bin or set a maximum width of 512 px or less.'
                                % width)
        return warnings

    def _summary(self):
        infos = self._readInfos()
        if not infos:
            return ['No movie written yet.']
        summary = ['*%d movie%s*: %s.' % (len(infos), 's' if len(infos) > 1 else '',
                                          infos[0].get('settings', ''))]
        for i in infos:
            path = self._getExtraPath(os.path.basename(i['path']))
            summary.append('%s: %s %d frames, %.1f s, %dx%d px, %s'
                           % (i['name'], link(path), i['frames'], i['duration_s'], i['width'],
                              i['height'], movie_pipeline.human_size(i['size_bytes'])))
            if i.get('particles'):
                summary.append('    %s' % movie_pipeline.particle_summary(i['particles']))
        preview = self.getPreviewFile()
        if preview:
            summary.append('Preview (central frames): %s' % link(preview))
        return summary

    def _methods(self):
        infos = self._readInfos()
        if not infos:
            return []
        s = self._settings()
        kind = {'tiltseries': 'tilt series', 'tomogram': 'tomograms',
                'volume': 'volumes'}[self._kindName()]
        text = ('%s made with cryoprocs [cryoprocs2026], with mrc2movie\'s processing: '
                % ('%d movies of the %s were' % (len(infos), kind) if len(infos) > 1 else
                   'A movie of the %s was' % kind.rstrip('s') if kind != 'tilt series' else
                   'A movie of the tilt series was'))
        text += ('the global minimum and maximum of the kept slices were mapped to 8 bits'
                 if s.window == 'minmax' else
                 'the %g-%g %% percentile window was mapped to 8 bits' % s.percentiles)
        if s.clahe:
            text += (', followed by contrast-limited adaptive histogram equalisation '
                     '[Zuiderveld1994] (clip limit %g, %d x %d tiles)'
                     % (s.clip_limit, s.tile_grid_size, s.tile_grid_size))
        text += '; %s.' % s.describe()
        return [text]

    def _citations(self):
        return ['Zuiderveld1994'] if self.applyClahe.get() else []
