package dev.mpsactors.cluster;

import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509ExtendedTrustManager;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.remote.artery.tcp.ConfigSSLEngineProvider;

/**
 * Pekko's own TLS engine provider (the one {@code mps-actors.cluster.tls} configures), whose trust managers
 * count the peer certificates they refuse, per member (by its Artery port): the event that shows an outsider
 * tried to connect and was turned away. Set as {@code pekko.remote.artery.ssl.ssl-engine-provider}.
 *
 * <p>Its trust managers name no accepted issuers in the handshake. With the issuers named, a peer whose key
 * store holds no certificate from them sends none, and the handshake fails before any trust manager looks;
 * without, the outsider sends its own certificate and the trust store itself refuses it, which is counted.
 */
public final class RefusalCountingSslEngineProvider extends ConfigSSLEngineProvider {
    private static final Map<String, AtomicInteger> REFUSED = new ConcurrentHashMap<>();
    private final String self;

    public RefusalCountingSslEngineProvider(ActorSystem system) {
        super(system);
        this.self = Integer.toString(system.settings().config().getInt("pekko.remote.artery.canonical.port"));
    }

    /** Peer certificates the member on {@code port} refused so far. */
    static int refusedBy(int port) {
        AtomicInteger n = REFUSED.get(Integer.toString(port));
        return n == null ? 0 : n.get();
    }

    @Override
    public TrustManager[] trustManagers() {
        TrustManager[] managers = super.trustManagers();
        for (int i = 0; i < managers.length; i++) {
            if (managers[i] instanceof X509ExtendedTrustManager m) {
                managers[i] = new Counting(m);
            }
        }
        return managers;
    }

    private final class Counting extends X509ExtendedTrustManager {
        private final X509ExtendedTrustManager delegate;

        Counting(X509ExtendedTrustManager delegate) {
            this.delegate = delegate;
        }

        private interface Check {
            void run() throws CertificateException;
        }

        private void counted(Check check) throws CertificateException {
            try {
                check.run();
            } catch (CertificateException e) {
                REFUSED.computeIfAbsent(self, k -> new AtomicInteger()).incrementAndGet();
                throw e;
            }
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            counted(() -> delegate.checkClientTrusted(chain, authType, socket));
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            counted(() -> delegate.checkServerTrusted(chain, authType, socket));
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            counted(() -> delegate.checkClientTrusted(chain, authType, engine));
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            counted(() -> delegate.checkServerTrusted(chain, authType, engine));
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            counted(() -> delegate.checkClientTrusted(chain, authType));
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            counted(() -> delegate.checkServerTrusted(chain, authType));
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
        }
    }
}
