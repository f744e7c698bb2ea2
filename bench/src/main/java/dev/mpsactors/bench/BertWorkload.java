package dev.mpsactors.bench;

import dev.mpsactors.model.BertConfig;
import dev.mpsactors.model.BertDeviceWeights;
import dev.mpsactors.model.BertProgram;
import dev.mpsactors.model.HfModelFolder;
import dev.mpsactors.nativemps.KernelLibrary;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The BERT model for the thread baselines. {@code raw} runs the very {@link BertProgram} the model actor
 * compiles (same weights, one native call per request, batch = sequences per request). {@code locked}
 * runs the encoder as individual kernels ({@link EncoderLayerWorkload}: the same built-in kernels and
 * shapes, random weights, no embeddings or pooler — slightly less work than the program, which only
 * flatters the baseline), once per sequence of the request.
 */
final class BertWorkload implements StressWorkload {
    private final BertConfig config;
    private final int batch;
    private final int seq;
    private final BertDeviceWeights weights;
    private final KernelLibrary library;
    private final BertProgram.Pipelines pipelines;
    private final BertProgram program;
    private final EncoderLayerWorkload kernels;

    BertWorkload(NativeDevice device, Path folder, int batch, int seq) throws IOException {
        HfModelFolder model = HfModelFolder.load(folder);
        this.config = model.config();
        this.batch = batch;
        this.seq = seq;
        this.weights = BertDeviceWeights.upload(device, model.weights());
        this.library = device.compileLibrary("*", "");
        this.pipelines = BertProgram.Pipelines.from(library);
        this.program = BertProgram.compile(weights, pipelines, batch, seq, BertProgram.Layout.PACKED);
        this.kernels = new EncoderLayerWorkload(device, shape(config, seq), 42);
    }

    static EncoderShape shape(BertConfig c, int seq) {
        return new EncoderShape(seq, c.hiddenSize(), c.numAttentionHeads(), c.intermediateSize(), c.numHiddenLayers());
    }

    @Override
    public Client client(NativeDevice device, int id) {
        BertProgram.RequestBuffers buffers = program.allocate(weights);
        Random random = new Random(id);
        int[][] ids = new int[batch][seq];
        for (int[] row : ids) {
            for (int t = 0; t < seq; t++) {
                row[t] = random.nextInt(config.vocabSize());
            }
        }
        program.writeInputs(buffers.slots(), ids, null, null);
        return new BertClient(device, id, buffers);
    }

    private final class BertClient implements Client {
        private final NativeDevice device;
        private final int id;
        private final BertProgram.RequestBuffers buffers;
        private final dev.mpsactors.nativemps.DeviceBuffer[] slots;
        private List<EncoderLayerWorkload.Activations> activations;
        private List<KernelStep> steps;

        BertClient(NativeDevice device, int id, BertProgram.RequestBuffers buffers) {
            this.device = device;
            this.id = id;
            this.buffers = buffers;
            this.slots = buffers.slots();
        }

        @Override
        public void encodeWhole(NativeStream stream) {
            program.encode(stream, slots);
        }

        /** Built on first use: only the locked baseline needs the per-kernel activations. */
        @Override
        public List<KernelStep> steps() {
            if (steps == null) {
                activations = new ArrayList<>();
                steps = new ArrayList<>();
                for (int s = 0; s < batch; s++) {
                    EncoderLayerWorkload.Activations a = kernels.activations(device, 1000L * id + s);
                    activations.add(a);
                    kernels.forEachKernel(a, (p, args, ln) -> steps.add(new KernelStep(p, args, ln)));
                }
            }
            return steps;
        }

        @Override
        public void close() {
            buffers.close();
            if (activations != null) {
                activations.forEach(EncoderLayerWorkload.Activations::close);
            }
        }
    }

    @Override
    public void close() {
        kernels.close();
        program.close();
        pipelines.close();
        library.close();
        weights.close();
    }
}
