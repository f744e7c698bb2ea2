package dev.mpsactors.runtime;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;

/** The {@code mps-actors.text} settings and the tokenizing dispatcher's name. */
public record TextSettings(int maxTexts) {
    public static final String TOKENIZE_DISPATCHER = "mps-actors.dispatchers.tokenize";
    private static final String MAX_TEXTS = "mps-actors.text.max-texts";

    public static TextSettings fromConfig(Config root) {
        int maxTexts;
        try {
            maxTexts = root.getInt(MAX_TEXTS);
        } catch (ConfigException e) {
            throw new InvalidConfigException(MAX_TEXTS, e.getMessage());
        }
        if (maxTexts < 1 || maxTexts > 1_000_000) {
            throw new InvalidConfigException(MAX_TEXTS, "must be in [1, 1000000], got " + maxTexts);
        }
        return new TextSettings(maxTexts);
    }
}
