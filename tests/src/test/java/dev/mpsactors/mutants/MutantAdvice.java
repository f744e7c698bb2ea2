package dev.mpsactors.mutants;

import dev.mpsactors.nativemps.DeviceEvent;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.KernelCacheProtocol;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamPoolProtocol;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.runtime.DeviceStreams;
import java.util.List;
import java.util.Map;
import net.bytebuddy.asm.Advice;
import net.bytebuddy.implementation.bytecode.assign.Assigner;

/** Advice inlined into the owners by {@link MutantMain}: each puts back one of the fork's designs. */
final class MutantAdvice {
    private MutantAdvice() {}

    /** 1: KernelCacheShard.onGetPipeline: a miss while the library compiles starts another compilation. */
    static final class CompileTwice {
        @Advice.OnMethodEnter
        static List<Object> enter(@Advice.Argument(0) KernelCacheProtocol.GetPipeline m,
                                  @Advice.FieldValue("cache") Map<Object, Object> cache) {
            return MutantSupport.forgetCompilation(cache, m.key().library());
        }

        @Advice.OnMethodExit
        static void exit(@Advice.Enter List<Object> earlier, @Advice.Argument(0) KernelCacheProtocol.GetPipeline m,
                         @Advice.FieldValue("cache") Map<Object, Object> cache) {
            if (earlier != null) {
                MutantSupport.joinCompilation(cache, m.key().library(), earlier);
            }
        }
    }

    /** 2: DeviceEvent.share: hands out the pool's own reference instead of a new one. */
    static final class RawEventReference {
        @Advice.OnMethodEnter(skipOn = Advice.OnNonDefaultValue.class)
        static boolean enter() {
            return true;
        }

        @Advice.OnMethodExit
        static void exit(@Advice.This DeviceEvent self, @Advice.Return(readOnly = false) DeviceEvent shared) {
            shared = self;
        }
    }

    /** 3: StreamActor.onWaitFor: the owner holds itself while it waits for the other stream's point. */
    static final class LockAcrossDeviceWait {
        @Advice.OnMethodEnter
        static void enter(@Advice.This Object owner, @Advice.FieldValue("handle") StreamHandle self,
                          @Advice.Argument(0) StreamProtocol.WaitFor m) {
            if (m.other().id() != self.id()) {
                MutantSupport.blockUntilComplete(owner, m.other(), m.point());
            }
        }
    }

    /** 4: StreamActor.onSubmit: submissions are encoded and committed by pool threads, not by the owner. */
    static final class EncodeWithoutOwner {
        @Advice.OnMethodEnter(skipOn = Advice.OnNonDefaultValue.class)
        static Object enter(@Advice.This Object owner, @Advice.FieldValue("stream") NativeStream stream,
                            @Advice.FieldValue("handle") StreamHandle handle,
                            @Advice.FieldValue("pointBase") long pointBase, @Advice.Argument(0) StreamProtocol.Submit m) {
            MutantSupport.submitWithoutOwner(stream, handle, pointBase, m);
            return owner;
        }

        @Advice.OnMethodExit
        static void exit(@Advice.Enter Object owner,
                         @Advice.Return(readOnly = false, typing = Assigner.Typing.DYNAMIC) Object behavior) {
            behavior = owner;
        }
    }

    /** 5: AllocatorActor.onFreeAfter: the allocator waits for the pending free's point before going on. */
    static final class AllocatorBlocksOnFree {
        @Advice.OnMethodExit
        static void exit(@Advice.This Object owner, @Advice.Argument(0) AllocatorProtocol.FreeAfter m) {
            if (m.stream() != null) {
                MutantSupport.blockUntilComplete(owner, m.stream(), m.point());
            }
        }
    }

    /** 7: DeviceStreams.release (the facade's): synchronises the stream on the caller's thread before releasing. */
    static final class ReleaseSynchronizes {
        @Advice.OnMethodEnter
        static void enter(@Advice.This DeviceStreams streams, @Advice.Argument(0) StreamPoolProtocol.StreamLease lease) {
            MutantSupport.synchronize(streams, lease.stream());
        }
    }
}
